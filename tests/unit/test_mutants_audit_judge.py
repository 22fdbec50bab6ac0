"""Every field of the audit report, pinned for each scenario of ``test_audit_judge.py``.

Mutation testing (``scripts/mutation``) found that the scenario tests check finding codes and a
few figures, while the rest of ``reserve audit --json`` (messages naming the txid and vault,
advice with the command to run, entry checks, balances, pending flows) could change unnoticed.
Here each scenario's ``AuditReport.to_json()`` must equal the one recorded in
``test_mutants_audit_judge.json``. After a deliberate change to the report, regenerate that file
and review its diff::

    RESERVE_REGENERATE_GOLDEN=1 .venv/bin/pytest tests/unit/test_mutants_audit_judge.py
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import tests.unit.test_audit_judge as scenarios
from ledger.chain import audit_judge
from ledger.chain.audit_report import AuditReport

GOLDEN = Path(__file__).with_suffix(".json")
SCENARIOS = (
    "test_a_clean_reserve_reconciles_and_the_ledger_total_is_the_reserve_figure",
    "test_a_vault_account_without_a_definition_is_a_finding_and_counts_in_the_ledger_total",
    "test_an_empty_undefined_vault_account_is_not_a_finding",
    "test_a_pending_spend_is_pending_not_a_wallet_scan_mismatch",
    "test_a_pending_deposit_is_pending",
    "test_an_output_the_wallet_lacks_without_a_pending_spend_is_a_mismatch_with_rescan_advice",
    "test_a_wallet_narrower_than_the_issued_addresses_is_told_to_watch_further",
    "test_a_conflicted_recorded_deposit_names_its_replacement_and_says_reverse",
    "test_min_conf_is_applied_to_entries_and_the_scan",
    "test_a_coinbase_at_100_confirmations_is_immature_and_counts_in_the_reserve",
    "test_an_unclassifiable_transaction_is_a_finding_and_the_audit_goes_on",
    "test_every_finding_code_has_advice_that_fixes_it",
    "test_a_balance_mismatch_explained_by_a_reorg_says_wait",
    "test_a_recorded_deposit_double_spent_away_is_conflicted_by_the_wallets_state",
)


def _reports(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    judge = audit_judge.judge  # the name the scenarios call is replaced below
    for name in SCENARIOS:
        made: list[AuditReport] = []

        def recording_judge(*args: Any, _made: list[AuditReport] = made, **kwargs: Any) -> AuditReport:
            report = judge(*args, **kwargs)
            _made.append(report)
            return report

        monkeypatch.setattr(scenarios, "judge", recording_judge)
        getattr(scenarios, name)()
        monkeypatch.setattr(scenarios, "judge", judge)
        assert made, f"{name} judged nothing"
        yield name, [json.loads(json.dumps(r.to_json())) for r in made]


def test_every_scenario_report_is_the_recorded_one(monkeypatch: pytest.MonkeyPatch) -> None:
    reports = dict(_reports(monkeypatch))
    if os.environ.get("RESERVE_REGENERATE_GOLDEN") == "1":
        GOLDEN.write_text(json.dumps(reports, indent=1, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert sorted(golden) == sorted(reports)
    for name in SCENARIOS:
        assert reports[name] == golden[name], name
