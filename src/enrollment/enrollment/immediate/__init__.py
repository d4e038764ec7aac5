"""The immediate workflow (`EnrollmentStateMachine`): accept the offer, verify the customer, decide
eligibility (the rules lab), commit or revert the enrollment, publish it to the stream."""
