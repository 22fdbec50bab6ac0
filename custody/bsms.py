"""The BIP-129 (BSMS 1.0) descriptor record a coordinator hands to each signer of a vault."""

from __future__ import annotations

from custody.checksum import add_checksum
from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput
from custody.network import Network


def bsms_descriptor_record(descriptor: MultisigDescriptor, network: Network) -> str:
    """The BSMS 1.0 descriptor record of ``descriptor``: four lines.

    The version, the descriptor template (each key followed by ``/**``, meaning the receive and
    change branches given on the next line, with its own checksum), the path restrictions
    (``/0/*,/1/*``) and the first receive address, for the signer to check.
    """
    if not descriptor.is_multipath:
        raise InvalidInput("a BSMS record describes receive and change: give the /<0;1>/* form")
    keys = ",".join(f"{key}/**" for key in descriptor.keys)
    template = add_checksum(f"{descriptor.kind}(sortedmulti({descriptor.threshold},{keys}))")
    restrictions = ",".join(f"/{branch}/*" for branch in descriptor.branches)
    return "\n".join(("BSMS 1.0", template, restrictions, descriptor.address(0, False, network)))
