"""The chain wing: vaults, address issuance, recording movements, sync and the audit.

Pure judgements (movement, audit_judge, audit_report) beside the code that gathers from the node
and writes the result (vaults, issuance, recording, sync, audit).
"""
