"""The tests read template.yaml through the scripts' reader: one reader, and the product and the scripts
never import the tests."""

from sam_template import ROOT, resource, table_definition, template

__all__ = ["ROOT", "resource", "table_definition", "template"]
