"""Which host or hop paced a streamed deploy, from each relay's waiting shares
(receive, send): the pure analysis behind deploy's "went at the pace of" line."""
from __future__ import annotations

from build.cluster.stream import slow_point

SENDING, RECEIVING, BUSY, BOTH = (0.1, 0.9), (0.9, 0.1), (0.1, 0.1), (0.45, 0.45)


def test_a_slow_host_in_the_middle_is_named() -> None:
    # Hosts before it wait to send, hosts after it wait to receive, it waits for neither.
    assert slow_point([SENDING, SENDING, BUSY, RECEIVING, RECEIVING]) == (2, 2)


def test_a_slow_link_is_the_hop_between_a_sender_and_a_receiver() -> None:
    assert slow_point([SENDING, SENDING, RECEIVING, RECEIVING]) == (1, 2)
    assert slow_point([SENDING, SENDING, SENDING, RECEIVING]) == (2, 3)   # into the last host


def test_a_slow_first_or_last_host() -> None:
    assert slow_point([BUSY, RECEIVING, RECEIVING]) == (0, 0)
    assert slow_point([SENDING, SENDING, BUSY]) == (2, 2)


def test_nothing_is_named_when_the_feed_paced_everyone_or_nobody_clearly_did() -> None:
    assert slow_point([RECEIVING, RECEIVING, RECEIVING]) is None   # the controller's uplink
    assert slow_point([BOTH, BOTH, BOTH]) is None
    assert slow_point([SENDING, RECEIVING, SENDING, RECEIVING]) is None
