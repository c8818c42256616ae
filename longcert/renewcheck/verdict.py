"""How the renewal is judged: every certificate before against after (:func:`judge`), one
:class:`Row` per file: each one meant to be renewed re-issued, long enough, signed by the same
CA and with the same identity and server; every CA untouched; pure.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from longcert import verify
from longcert.renewcheck.certs import CA_FILES, Seen

TOLERANCE_DAYS = verify.TOLERANCE_DAYS
DAYS_PER_YEAR = verify.DAYS_PER_YEAR
KUBELET_CURRENT = "/var/lib/kubelet/pki/kubelet-client-current.pem"


@dataclass(frozen=True)
class Row:
    """One file's line in the table."""

    file: str
    before: Seen | None
    after: Seen | None
    renewed: bool  # the renewal is meant to re-issue it
    problems: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


def judge(
    before: dict[str, Seen],
    after: dict[str, Seen],
    renewed: Iterable[str],
    leaf_years: int,
    now: datetime,
) -> list[Row]:
    """Compare every certificate before and after the renewal: each one meant to be renewed
    must be re-issued, last at least ``leaf_years`` from ``now``, be signed by the same CA
    as before, keep its subject, SANs and server, and be usable (key and CA match); CAs must
    be untouched. A leaf that outlives its CA is noted: it works only until the CA ends."""
    wanted = set(renewed)
    asked_days = leaf_years * DAYS_PER_YEAR
    rows = []
    for file in sorted(set(before) | set(after), key=_order):
        old, new = before.get(file), after.get(file)
        problems: list[str] = []
        notes: list[str] = []
        meant = file in wanted and old is not None
        if new is None:
            problems.append("gone after the renewal")
        elif old is None:
            notes.append("made by the renewal")
        elif file in CA_FILES or old.is_ca:
            if (old.serial, old.public_key, old.not_after) != (
                new.serial, new.public_key, new.not_after):
                problems.append("a CA changed: renewal must never replace a CA")
        elif meant:
            if new.serial == old.serial:
                problems.append("not re-issued by the renewal")
            left = new.days_left(now)
            if left < asked_days - TOLERANCE_DAYS:
                problems.append(f"ends in {left:.0f} days, shorter than the asked "
                                f"{asked_days} ({leaf_years}y)")
            if not new.signer:
                problems.append(f"not signed by any CA in pki/ (issuer {new.issuer})")
            elif old.signer and new.signer != old.signer:
                problems.append(f"now signed by {new.signer}, was {old.signer}")
            if (new.subject, new.sans) != (old.subject, old.sans):
                problems.append(f"identity changed: {old.subject} {list(old.sans)} -> "
                                f"{new.subject} {list(new.sans)}")
            if new.server != old.server:
                problems.append(f"server changed: {old.server} -> {new.server}")
            ca = after.get(new.signer)
            slack = timedelta(days=TOLERANCE_DAYS)  # made seconds after a CA of equal span
            if ca is not None and new.not_after > ca.not_after + slack:
                notes.append(f"outlives its CA, which ends {verify._iso(ca.not_after)}: "
                             "usable until then")
        elif file == "kubelet.conf" and old.days_left(now) < asked_days - TOLERANCE_DAYS:
            # Only an embedded certificate is in the inventory: a node initialised before v1.17
            # keeps it, and nothing renews it (kubernetes/kubeadm#1753).
            problems.append(
                f"embeds its client certificate, which ends in {old.days_left(now):.0f} days and "
                f"which nothing renews: point it at {KUBELET_CURRENT} (renew.sh does when the "
                "kubelet rotates its certificate, kubeadm-certs.md)")
        else:
            notes.append("not renewed by kubeadm"
                         + (" (the kubelet rotates its own client certificate)"
                            if file == "kubelet.conf" else ""))
        if new is not None and (meant or file in CA_FILES):
            problems += list(new.problems)
        rows.append(Row(file, old, new, meant, tuple(problems), tuple(notes)))
    return rows


def _order(file: str) -> tuple[int, str]:
    return (0 if file in CA_FILES else 1 if file.startswith("pki/") else 2, file)
