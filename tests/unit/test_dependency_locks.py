"""Every package the project installs is pinned by version and by the hashes of its files, and every install
refuses a file whose hash is not the locked one: the environments (uv, through the Makefile), uv itself and
the layer that ships to Lambda (pip, through the layer's Makefile).

The refusals are shown on a wheel made here and served from a local folder (no index, no network): the
same recipe installs it when the lock holds its hash, and installs nothing when the lock holds another hash
or none (an install that did not require hashes would take a lock line without one).
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tests.support.locks import normalized, pins

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "src" / "layers" / "common"
# Each lock file and the file it is resolved from (`make lock`).
LOCKS = {
    ROOT / "requirements-dev.lock": ROOT / "requirements-dev.in",
    ROOT / "requirements-emulator.lock": ROOT / "requirements-emulator.in",
    ROOT / "requirements-checkov.lock": ROOT / "requirements-checkov.in",
    ROOT / "requirements-uv.lock": ROOT / "requirements-uv.in",
    LAYER / "requirements.txt": LAYER / "requirements.in",
}
PROBE = "lockprobe"
PROBE_VERSION = "1.0"


@pytest.mark.parametrize("lock", sorted(LOCKS), ids=lambda path: str(path.relative_to(ROOT)))
def test_each_lock_pins_every_package_by_version_and_hash_at_the_versions_its_source_asks(lock: Path) -> None:
    locked = pins(lock)
    assert locked, lock
    assert [name for name, pin in locked.items() if not pin.hashes] == []
    for line in LOCKS[lock].read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            requirement = Requirement(line)
            assert requirement.specifier.contains(locked[normalized(requirement.name)].version), line


def test_the_emulator_and_the_tests_run_the_same_versions_of_what_both_hold() -> None:
    dev, emulator = pins(ROOT / "requirements-dev.lock"), pins(ROOT / "requirements-emulator.lock")
    assert {name: dev[name] for name in emulator.keys() & dev.keys()} == {
        name: emulator[name] for name in emulator.keys() & dev.keys()
    }
    assert {"boto3", "botocore", "ministack"} <= emulator.keys() & dev.keys()


def test_uv_itself_is_installed_from_its_hashes() -> None:
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile.split("\n$(UV_INSTALLED): requirements-uv.lock\n", 1)[1].split("\n\n", 1)[0]
    assert "pip install" in recipe
    assert "--require-hashes" in recipe
    assert "--requirement requirements-uv.lock" in recipe


def _wheel(folder: Path) -> Path:
    """A minimal pure-Python wheel of PROBE, as a build backend writes it."""
    folder.mkdir(parents=True, exist_ok=True)
    dist_info = f"{PROBE}-{PROBE_VERSION}.dist-info"
    files = {
        f"{PROBE}.py": b"INSTALLED = True\n",
        f"{dist_info}/METADATA": f"Metadata-Version: 2.1\nName: {PROBE}\nVersion: {PROBE_VERSION}\n".encode(),
        f"{dist_info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, content in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(content)}")
    files[f"{dist_info}/RECORD"] = ("\n".join([*record, f"{dist_info}/RECORD,,"]) + "\n").encode()
    path = folder / f"{PROBE}-{PROBE_VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


def _lock_line(wheel: Path, *, hash_of: bytes | None = None) -> str:
    """The probe pinned with the hash of its wheel, or with the hash of other bytes (`hash_of`)."""
    digest = hashlib.sha256(wheel.read_bytes() if hash_of is None else hash_of).hexdigest()
    return f"{PROBE}=={PROBE_VERSION} \\\n    --hash=sha256:{digest}\n"


# The probe pinned without a hash: accepted only by an install that does not require hashes.
UNHASHED = f"{PROBE}=={PROBE_VERSION}\n"


def _make(directory: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    inherited = {key: value for key, value in os.environ.items() if not key.startswith(("MAKE", "UV_", "PIP_"))}
    return subprocess.run(
        ["make", "-s", *args],
        cwd=directory,
        env=inherited | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _environment_from(tmp_path: Path, wheels: Path, lock_line: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`make emulator-venv` (the recipe every environment shares) in a copy of the project that holds only the
    Makefile, the project's uv, and a lock of the probe; uv finds the probe in a local folder and nowhere else."""
    project = tmp_path / "project"
    project.mkdir(parents=True)
    shutil.copy(ROOT / "Makefile", project / "Makefile")
    (project / ".venv-uv").symlink_to(ROOT / ".venv-uv")
    # Older than uv's install stamp: make uses the project's uv as it is.
    shutil.copy(ROOT / "requirements-uv.lock", project / "requirements-uv.lock")
    os.utime(project / "requirements-uv.lock", (0, 0))
    (project / "requirements-emulator.lock").write_text(lock_line)
    done = _make(
        project,
        "emulator-venv",
        f"PYTHON={sys._base_executable}",  # the interpreter of this test run: Python 3.13, whatever pyenv selects
        UV_NO_INDEX="1",
        UV_FIND_LINKS=str(wheels),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_OFFLINE="1",
    )
    return done, project / ".venv-emulator"


def _installed(environment: Path) -> bool:
    return any(environment.glob(f"lib/python3.*/site-packages/{PROBE}.py"))


def test_an_environment_installs_a_file_only_if_the_lock_holds_its_hash(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "wheels")

    refused, environment = _environment_from(
        tmp_path / "tampered", wheel.parent, _lock_line(wheel, hash_of=b"another file")
    )
    assert refused.returncode != 0
    assert "hash mismatch" in refused.stderr.lower(), refused.stderr
    assert not _installed(environment)
    assert not (environment / "bin" / ".installed").exists()  # the next make tries again

    unhashed, environment = _environment_from(tmp_path / "unhashed", wheel.parent, UNHASHED)
    assert unhashed.returncode != 0
    assert "--require-hashes" in unhashed.stderr, unhashed.stderr
    assert not _installed(environment)

    accepted, environment = _environment_from(tmp_path / "locked", wheel.parent, _lock_line(wheel))
    assert accepted.returncode == 0, accepted.stderr
    assert _installed(environment)


def _layer_from(tmp_path: Path, wheels: Path, lock_line: str) -> tuple[subprocess.CompletedProcess[str], Path]:
    """The layer's build as `sam build` runs it (its Makefile, ARTIFACTS_DIR set), with a requirements.txt of
    the probe; pip finds the probe in a local folder and nowhere else."""
    source, artifacts = tmp_path / "source", tmp_path / "artifacts"
    (source / "commonlib").mkdir(parents=True)
    artifacts.mkdir()
    shutil.copy(LAYER / "Makefile", source / "Makefile")
    (source / "requirements.txt").write_text(lock_line)
    done = _make(
        source,
        "build-CommonLayer",
        f"ARTIFACTS_DIR={artifacts}",
        f"PYTHON={sys._base_executable}",
        PIP_NO_INDEX="1",
        PIP_FIND_LINKS=str(wheels),
        PIP_NO_CACHE_DIR="1",
    )
    return done, artifacts / "python"


def test_the_layer_installs_a_file_only_if_its_requirements_hold_its_hash(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path / "wheels")

    refused, site = _layer_from(tmp_path / "tampered", wheel.parent, _lock_line(wheel, hash_of=b"another file"))
    assert refused.returncode != 0
    assert "do not match the hashes" in refused.stderr.lower(), refused.stderr
    assert not (site / f"{PROBE}.py").exists()

    unhashed, site = _layer_from(tmp_path / "unhashed", wheel.parent, UNHASHED)
    assert unhashed.returncode != 0
    assert "--require-hashes" in unhashed.stderr, unhashed.stderr
    assert not (site / f"{PROBE}.py").exists()

    accepted, site = _layer_from(tmp_path / "locked", wheel.parent, _lock_line(wheel))
    assert accepted.returncode == 0, accepted.stderr
    assert (site / f"{PROBE}.py").exists()
