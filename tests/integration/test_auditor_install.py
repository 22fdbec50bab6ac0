"""The auditors' install, as docs/auditor-requirements.txt and the README give it, in a clean venv on
this platform: only the hash-pinned packages get installed, from PyPI (none of this machine's pip
settings), and the offline verifier runs with them alone."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.journal.checkpoint import public_key_pem
from tests.unit.test_attestation_doc import synthetic
from tests.unit.test_install import pins

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "pip install --require-hashes -r docs/auditor-requirements.txt"
# an auditor's machine has none of these: local wheels, constraints or extra indexes
MACHINE_PIP_SETTINGS = {
    "PIP_FIND_LINKS",
    "PIP_CONSTRAINT",
    "PIP_EXTRA_INDEX_URL",
    "PIP_NO_INDEX",
    "PYTHONPATH",
}


def test_the_auditors_requirements_install_in_a_clean_venv_and_run_the_verifier(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in MACHINE_PIP_SETTINGS}
    env["PIP_CONFIG_FILE"] = os.devnull
    venv = tmp_path / "auditor"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=env)
    python = str(venv / "bin" / "python")

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([python, *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False)

    installed = run("-m", *shlex.split(INSTALL), "--quiet")
    assert installed.returncode == 0, installed.stdout + installed.stderr
    frozen = run("-m", "pip", "freeze").stdout.split()
    pinned = pins(ROOT / "docs" / "auditor-requirements.txt")
    assert sorted(frozen) == sorted(f"{name}=={pin.version}" for name, pin in pinned.items())

    key = Ed25519PrivateKey.generate()
    doc, pem = tmp_path / "attestation.json", tmp_path / "ledger.pem"
    document = synthetic(key)
    doc.write_text(json.dumps(document))
    pem.write_bytes(public_key_pem(key))
    ok = run("-m", "ledger.attest.verify_doc", str(doc), "--pubkey", str(pem))
    assert ok.returncode == 0 and ok.stdout.rstrip().endswith("OK: the attestation verifies"), (
        ok.stdout + ok.stderr
    )
    doc.write_text(json.dumps({**document, "height": 3}))
    bad = run("-m", "ledger.attest.verify_doc", str(doc), "--pubkey", str(pem))
    assert bad.returncode == 1 and "FAIL  signature:" in bad.stdout, bad.stdout + bad.stderr
    # the proofs of control's verifier (coincurve), imported when a document carries proofs
    control = run("-c", "import ledger.attest.control, coincurve; print(coincurve.__name__)")
    assert control.returncode == 0 and control.stdout.strip() == "coincurve", control.stderr
