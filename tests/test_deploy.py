"""The deployment manifests run commands this version of shardscan accepts."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

from shardscan.cli import build_parser

DEPLOY = Path(__file__).parents[1] / "deploy"


def shardscan_commands(text: str) -> list[list[str]]:
    """Every `shardscan ...` invocation in a shell snippet (or `sh -c '<snippet>'`), up to the
    `;` that ends it."""
    words = shlex.split(text)
    if words[:2] == ["sh", "-c"]:
        return shardscan_commands(words[2])
    words = shlex.split(text.replace(";", " ; "))
    commands, current = [], None
    for word in words:
        if word == "shardscan":
            current = []
            commands.append(current)
        elif word == ";":
            current = None
        elif current is not None:
            current.append(word)
    return commands


def test_rayjob_scans_with_the_ray_engine_into_a_results_store():
    job = yaml.safe_load((DEPLOY / "rayjob.yaml").read_text())
    assert job["kind"] == "RayJob"
    (argv,) = shardscan_commands(job["spec"]["entrypoint"])
    args = build_parser().parse_args(argv)
    assert (args.engine, args.ray_address, args.log_format) == ("ray", "auto", "json")
    assert args.results.startswith("s3://")
    images = {c["image"] for group in [job["spec"]["rayClusterSpec"]["headGroupSpec"],
                                       *job["spec"]["rayClusterSpec"]["workerGroupSpecs"]]
              for c in group["template"]["spec"]["containers"]}
    assert len(images) == 1  # head and workers run the same Ray and shardscan


def test_cronjob_scans_nightly_and_treats_findings_as_data():
    job = yaml.safe_load((DEPLOY / "cronjob.yaml").read_text())
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    (argv,) = shardscan_commands(container["args"][0])
    args = build_parser().parse_args(argv)
    assert args.engine == "local" and args.results and args.workers == 8
    assert '[ "$rc" -le 1 ]' in container["args"][0]


@pytest.mark.parametrize("extra", ["remote", "results", "ray"])
def test_image_installs_what_the_manifests_use(extra: str):
    install = next(line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if "pip install" in line)
    assert extra in install
