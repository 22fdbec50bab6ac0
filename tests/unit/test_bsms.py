"""The BIP-129 (BSMS 1.0) descriptor record, on the Keeper wallet's 2-of-3 testnet vector."""

from __future__ import annotations

import pytest

from custody.bsms import bsms_descriptor_record
from custody.checksum import split_checksum
from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput
from custody.network import Network
from tests.unit.test_descriptor import KEEPER_2OF3, KEEPER_CHECKSUM, KEEPER_FIRST_RECEIVE

KEEPER = MultisigDescriptor.parse(f"{KEEPER_2OF3}#{KEEPER_CHECKSUM}")


def test_record_lines() -> None:
    version, template, restrictions, address = bsms_descriptor_record(KEEPER, Network.TESTNET).split("\n")
    assert version == "BSMS 1.0"
    body, checksum = split_checksum(template, require=True)
    assert checksum is not None
    assert body == split_checksum(str(KEEPER))[0].replace("/<0;1>/*", "/**")
    assert restrictions == "/0/*,/1/*"
    assert address == KEEPER_FIRST_RECEIVE  # the signer checks it against its own derivation


def test_a_single_branch_descriptor_has_no_record() -> None:
    with pytest.raises(InvalidInput, match="describes receive and change: give the /<0;1>/\\* form"):
        bsms_descriptor_record(MultisigDescriptor.parse(KEEPER.receive()), Network.TESTNET)
