"""Helpers to read the compiled CloudFormation template of `sls package`."""

from __future__ import annotations

import fnmatch
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any, NamedTuple


class Packaged(NamedTuple):
    api: zipfile.ZipFile
    train: zipfile.ZipFile
    predict: zipfile.ZipFile  # built from the api's module folder: the same files
    s3_keys: dict  # handler → the S3 key its AWS::Lambda::Function deploys
    resources: dict
    outputs: dict
    log: str
    folder: Path  # the package folder: the zips, the templates, serverless-state.json
    template_text: str


def by_type(resources: dict, kind: str) -> dict[str, dict]:
    return {name: r for name, r in resources.items() if r["Type"] == kind}


def as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def statements_by_role(resources: dict) -> dict[str, list[dict]]:
    """Role logical id → every IAM statement that applies to it: its inline policies and each
    AWS::IAM::Policy attached to it."""
    found: dict[str, list[dict]] = defaultdict(list)
    for name, role in by_type(resources, "AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            found[name] += policy["PolicyDocument"]["Statement"]
    for policy in by_type(resources, "AWS::IAM::Policy").values():
        for role in policy["Properties"]["Roles"]:
            found[role["Ref"]] += policy["Properties"]["PolicyDocument"]["Statement"]
    return dict(found)


def actions(statements: list[dict], prefix: str = "") -> set[str]:
    return {a for s in statements if s["Effect"] == "Allow" for a in as_list(s["Action"]) if a.startswith(prefix)}


def resources_for(statements: list[dict], action: str) -> list:
    return [r for s in statements if s["Effect"] == "Allow" and action in as_list(s["Action"]) for r in as_list(s["Resource"])]


def bucket_pattern(resource: Any) -> str | None:
    """`projects/*/models/*` out of {"Fn::Join": ["", [{"Fn::GetAtt": ["ModelBucket", "Arn"]}, "/projects/*/models/*"]]}."""
    if isinstance(resource, dict) and "Fn::Join" in resource:
        sep, parts = resource["Fn::Join"]
        if sep == "" and len(parts) == 2 and parts[0] == {"Fn::GetAtt": ["ModelBucket", "Arn"]}:
            return parts[1].lstrip("/")
    return None


def s3_matches(pattern: str, key: str) -> bool:
    """IAM's resource wildcards: `*` matches any characters, `/` included (so does fnmatch's)."""
    return fnmatch.fnmatchcase(key, pattern)


def event_source_mappings(resources: dict) -> dict[str, dict]:
    """Queue logical id (`TrainQueue`, `PredictQueue`) → the properties of the mapping it feeds, with
    `Function`: the logical id of the function it invokes."""
    found = {}
    for mapping in by_type(resources, "AWS::Lambda::EventSourceMapping").values():
        props = mapping["Properties"]
        queue = props["EventSourceArn"]["Fn::GetAtt"][0]
        assert queue not in found, f"two mappings read {queue}"
        found[queue] = props | {"Function": props["FunctionName"]["Fn::GetAtt"][0]}
    return found


def archive_files(archive: zipfile.ZipFile) -> dict[str, int]:
    """File name → CRC-32 of its contents (directories left out)."""
    return {info.filename: info.CRC for info in archive.infolist() if not info.is_dir()}
