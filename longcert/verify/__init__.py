"""Prove a kubeadm binary's certificates: generate them all, read each one, fail closed.

The binary runs in the builder container with no network and a scratch directory mounted at
/etc/kubernetes (kubeadm's default paths, so no flag differences between versions matter). Every
``.crt`` and every client certificate embedded in a kubeconfig is then read with
``cryptography`` on the host.

One module per question: :mod:`~longcert.verify.plan` says what runs (the config and the
commands each version is given, and the scenarios), :mod:`~longcert.verify.judge` how a
certificate or kubeconfig is judged, :mod:`~longcert.verify.report` how the report is written
(JSON, counts, verdict, the printed summary, the error), :mod:`~longcert.verify.document` the
report people open (report.html with its validity timeline, REPORT.md),
:mod:`~longcert.verify.header` tells a binary's platform from its first bytes,
:mod:`~longcert.verify.run` runs the binary in containers and gathers the verdicts, and
:mod:`~longcert.verify.command` is the ``verify`` command (``verify.check_file``). Every
name is used as
``verify.NAME``, as when this was one module.
"""

from __future__ import annotations

import os  # noqa: F401  (tests patch verify.os.cpu_count, as before the split)

from longcert.verify.command import check_file, conclude, show_summary
from longcert.verify.expect import Expected, expectation, from_release, required_version
from longcert.verify.header import binary_platform, file_platform
from longcert.verify.judge import (
    CA_CERTS,
    DAYS_PER_YEAR,
    TOLERANCE_DAYS,
    CertCheck,
    _days,
    _is_ca,
    _iso,
    check_cert,
    check_directory,
    expected_certs,
    expected_kubeconfigs,
    key_type,
    key_type_problems,
    kubeconfig_client_certs,
    load_certificate,
    serial_number,
    signing_ca,
)
from longcert.verify.plan import (
    ADVERTISE_ADDRESS,
    BIN_MOUNT,
    CONFIG_API,
    CONFIG_MOUNT,
    KUBERNETES_DIR,
    NODE_NAME,
    STORED_CA_HOURS,
    STORED_CONFIG_ALGORITHM,
    STORED_LEAF_HOURS,
    Scenario,
    api_from_defaults,
    can_print_defaults,
    config_api,
    generate_commands,
    generate_steps,
    has_validity_config,
    kubeadm_config,
    renew_command,
    renewal_checks,
    renewed_files,
    scenarios,
)
from longcert.verify.report import (
    VerifyReport,
    checks_phrase,
    count_checks,
    failure_summary,
    report_rows,
    require_pass,
    summary_lines,
    verdict_lines,
)
from longcert.verify.run import (
    CRASHED,
    DEFAULT_RUN_IMAGE,
    DEFAULT_VERIFY_IMAGE,
    NATIVE_PLATFORM,
    QEMU_BINARIES,
    LineFn,
    ScenarioResult,
    _executor,
    _Runner,
    go_crash,
    list_images,
    merge_scenarios,
    reported_version,
    resolve_run_image,
    scenario_workers,
    verify_binary,
)

__all__ = [
    "ADVERTISE_ADDRESS",
    "BIN_MOUNT",
    "CA_CERTS",
    "CONFIG_API",
    "CONFIG_MOUNT",
    "CRASHED",
    "DAYS_PER_YEAR",
    "DEFAULT_RUN_IMAGE",
    "DEFAULT_VERIFY_IMAGE",
    "KUBERNETES_DIR",
    "NATIVE_PLATFORM",
    "NODE_NAME",
    "QEMU_BINARIES",
    "STORED_CA_HOURS",
    "STORED_CONFIG_ALGORITHM",
    "STORED_LEAF_HOURS",
    "TOLERANCE_DAYS",
    "CertCheck",
    "Expected",
    "LineFn",
    "Scenario",
    "ScenarioResult",
    "VerifyReport",
    "_Runner",
    "_days",
    "_executor",
    "_is_ca",
    "_iso",
    "api_from_defaults",
    "binary_platform",
    "can_print_defaults",
    "check_cert",
    "check_directory",
    "check_file",
    "checks_phrase",
    "conclude",
    "config_api",
    "count_checks",
    "expectation",
    "expected_certs",
    "expected_kubeconfigs",
    "failure_summary",
    "file_platform",
    "from_release",
    "generate_commands",
    "generate_steps",
    "go_crash",
    "has_validity_config",
    "key_type",
    "key_type_problems",
    "kubeadm_config",
    "kubeconfig_client_certs",
    "list_images",
    "load_certificate",
    "merge_scenarios",
    "renew_command",
    "renewal_checks",
    "renewed_files",
    "report_rows",
    "reported_version",
    "require_pass",
    "required_version",
    "resolve_run_image",
    "scenario_workers",
    "scenarios",
    "serial_number",
    "show_summary",
    "signing_ca",
    "summary_lines",
    "verdict_lines",
    "verify_binary",
]
