"""Is this head a pickle without a PROTO header (protocol 0 or 1)?

Protocol 0/1 pickles carry no magic. A bounded trial run of the symbolic machine, with no
policy, answers: a real pickle reaches STOP (or the end of the head) without breaking the
stack or the memo; text and binary data break within a few opcodes.
"""

from __future__ import annotations

from shardscan.limits import DEFAULT_LIMITS
from shardscan.scanners.base import FormatError
from shardscan.scanners.pickle.machine import LimitExceeded, PickleMachine, Truncated
from shardscan.scanners.pickle.opcodes import OPCODES
from shardscan.scanners.pickle.values import BROKEN
from shardscan.storage.reader import BytesReader, ReaderStream

#: Opcodes a truncated head must have run cleanly to count as a pickle.
MIN_TRIAL_OPCODES = 4


def probe_pickle(head: bytes, *, complete: bool) -> int | None:
    """0 or 1 when `head` reads as a protocol 0/1 pickle; None otherwise.

    `complete` says that `head` is the whole object, so the pickle must reach STOP.
    """
    if not head or head[0] not in OPCODES or head[0] == 0x80:
        return None
    head = head[: DEFAULT_LIMITS.pickle_trial_bytes]
    machine = PickleMachine(ReaderStream(BytesReader(head)), None, DEFAULT_LIMITS)
    try:
        if machine.run_one() is BROKEN:  # STOP on an empty stack: the loader fails too
            return None
    except Truncated:
        if complete or machine.facts.opcodes < MIN_TRIAL_OPCODES:
            return None
    except (FormatError, LimitExceeded):
        return None
    # Any event of the machine's own (a break, a nested loader) says this is not a plain
    # pickle; what the strings or bytes hold (secrets, executables) says nothing about that.
    if machine.facts.frame_straddled or any(e.rule_id.startswith("PKL") for e in machine.facts.events):
        return None
    return 0 if head.isascii() else 1  # protocol 0 is the text protocol
