"""template.yaml read as data, with CloudFormation's short intrinsic tags, and resolved against local resources."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"


class _Tag(dict):  # a parsed intrinsic, e.g. {"Ref": "MainTable"}
    pass


class _Loader(yaml.SafeLoader):
    pass


def _construct(tag: str) -> Callable[[yaml.SafeLoader, yaml.Node], Any]:
    name = "Ref" if tag == "Ref" else f"Fn::{tag}"

    def build(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
        if isinstance(node, yaml.ScalarNode):
            value: Any = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = value.split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            value = loader.construct_mapping(node, deep=True)
        return _Tag({name: value})

    return build


for _tag in ("Ref", "GetAtt", "Sub", "If", "Not", "Equals", "Join", "Select", "Split", "FindInMap", "And", "Or"):
    _Loader.add_constructor(f"!{_tag}", _construct(_tag))


def load_template(path: Path = TEMPLATE_PATH) -> dict[str, Any]:
    with path.open() as handle:
        document: dict[str, Any] = yaml.load(handle, Loader=_Loader)  # noqa: S506 - SafeLoader subclass
    return document


@dataclass
class Resolver:
    """Resolves intrinsics with local values: ``refs`` for Ref, ``attrs`` for GetAtt, parameters' defaults."""

    template: dict[str, Any]
    refs: dict[str, Any] = field(default_factory=dict)
    attrs: dict[tuple[str, str], Any] = field(default_factory=dict)
    pseudo: Mapping[str, str] = field(
        default_factory=lambda: {
            "AWS::Region": "us-east-1",
            "AWS::AccountId": "123456789012",
            "AWS::StackName": "claimbridge-local",
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
        }
    )

    def ref(self, name: str) -> Any:
        if name in self.pseudo:
            return self.pseudo[name]
        if name in self.refs:
            return self.refs[name]
        parameter = self.template.get("Parameters", {}).get(name)
        if parameter is not None:
            return parameter.get("Default", "")
        raise KeyError(f"cannot resolve Ref {name} locally")

    def resolve(self, value: Any) -> Any:
        if isinstance(value, _Tag):
            ((name, argument),) = value.items()
            if name == "Ref":
                return self.ref(argument)
            if name == "Fn::GetAtt":
                return self.attrs[(argument[0], argument[1])]
            if name == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                return re.sub(r"\$\{([^}!]+)\}", lambda m: str(self._sub_value(m.group(1))), text)
            if name == "Fn::Join":
                return str(argument[0]).join(str(self.resolve(part)) for part in argument[1])
            if name == "Fn::If":
                # Conditions are not evaluated locally: the true branch stands (only alarm actions use one).
                return self.resolve(argument[1])
            raise KeyError(f"cannot resolve {name} locally")
        if isinstance(value, dict):
            return {key: self.resolve(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.resolve(item) for item in value]
        return value

    def _sub_value(self, expression: str) -> Any:
        if "." in expression:
            logical, attribute = expression.split(".", 1)
            return self.attrs[(logical, attribute)]
        return self.ref(expression)


def resources_of(template: Mapping[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in template["Resources"].items() if spec["Type"] == kind}


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # API Gateway resource path, e.g. /internal/stores/{storeId}
    function: str
    api_key_required: bool
    pattern: re.Pattern[str]


def api_routes(template: Mapping[str, Any]) -> list[Route]:
    routes = []
    for function_name, spec in resources_of(template, "AWS::Serverless::Function").items():
        for event in (spec["Properties"].get("Events") or {}).values():
            if event["Type"] != "Api":
                continue
            props = event["Properties"]
            path = props["Path"]
            regex = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$"
            routes.append(
                Route(
                    method=props["Method"].upper(),
                    path=path,
                    function=function_name,
                    api_key_required=bool((props.get("Auth") or {}).get("ApiKeyRequired", False)),
                    pattern=re.compile(regex),
                )
            )
    # Literal segments beat parameters, as in API Gateway: more literal characters first.
    routes.sort(key=lambda r: -len(re.sub(r"\{\w+\}", "", r.path)))
    return routes
