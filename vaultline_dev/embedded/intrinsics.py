"""CloudFormation's intrinsic functions and creation order, for the embedded deploy.

Resolution is CloudFormation's: ``Ref`` gives the resource's physical id (what each type documents as its Ref
value), ``Fn::GetAtt`` only the attributes a resource type has (an unknown one fails, as CloudFormation rejects the
template), ``AWS::NoValue`` removes the property. Creation order is CloudFormation's too: a resource is created
after everything it references and everything in its ``DependsOn``.
"""

from __future__ import annotations

import graphlib
import re
from collections.abc import Iterator, Mapping
from typing import Any

from vaultline.errors import VaultlineError

_SUB_VARIABLE = re.compile(r"\$\{([^}!][^}]*)\}")


class TemplateError(VaultlineError):
    """The template uses something the embedded deploy does not resolve; the message names it."""


class _NoValue:
    """``Ref: AWS::NoValue``: the property is removed, as CloudFormation removes it."""


NO_VALUE = _NoValue()


def pseudo_parameters(account: str, region: str, stack_name: str) -> dict[str, str]:
    """The pseudo parameters CloudFormation defines for a stack (``AWS::NoValue`` is handled apart)."""
    return {
        "AWS::AccountId": account,
        "AWS::Region": region,
        "AWS::Partition": "aws",
        "AWS::URLSuffix": "amazonaws.com",
        "AWS::StackName": stack_name,
        "AWS::StackId": f"arn:aws:cloudformation:{region}:{account}:stack/{stack_name}/embedded",
    }


class Resolver:
    """Resolve intrinsics against what has been created so far (``refs``: Ref values; ``attributes``: GetAtt)."""

    def __init__(self, pseudo: Mapping[str, str]) -> None:
        self.pseudo = dict(pseudo)
        self.refs: dict[str, str] = {}
        self.attributes: dict[str, dict[str, str]] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, dict):
            if len(value) == 1:
                ((name, arg),) = value.items()
                if name == "Ref" or name.startswith("Fn::"):
                    return self._function(name, arg)
            resolved = {k: self(v) for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [item for item in (self(v) for v in value) if item is not NO_VALUE]
        return value

    def _function(self, name: str, arg: Any) -> Any:
        if name == "Ref":
            return self.ref(arg)
        if name == "Fn::GetAtt":
            logical, attribute = arg if isinstance(arg, list) else str(arg).split(".", 1)
            return self.get_att(logical, attribute)
        if name == "Fn::Join":
            separator, parts = arg
            return separator.join(str(p) for p in self(parts))
        if name == "Fn::Sub":
            return self.sub(arg)
        if name == "Fn::Select":
            index, items = arg
            return self(items)[int(self(index))]
        if name == "Fn::Split":
            separator, text = arg
            return str(self(text)).split(separator)
        raise TemplateError(f"intrinsic function {name} is not resolved by the embedded deploy")

    def ref(self, name: str) -> Any:
        """``Ref``: a pseudo parameter or a created resource's physical id."""
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in self.pseudo:
            return self.pseudo[name]
        if name not in self.refs:
            raise TemplateError(f"Ref {name}: no such resource created (yet)")
        return self.refs[name]

    def get_att(self, logical: str, attribute: str) -> str:
        """``Fn::GetAtt``: an attribute the created resource has."""
        if logical not in self.attributes:
            raise TemplateError(f"Fn::GetAtt {logical}.{attribute}: no such resource created (yet)")
        known = self.attributes[logical]
        if attribute not in known:
            raise TemplateError(
                f"Fn::GetAtt {logical}.{attribute}: not an attribute the embedded deploy gives"
                f" (it gives {', '.join(sorted(known)) or 'none'})"
            )
        return known[attribute]

    def sub(self, arg: Any) -> str:
        template, variables = (arg, {}) if isinstance(arg, str) else (arg[0], self(arg[1]))

        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in variables:
                return str(variables[name])
            if "." in name and name not in self.pseudo:
                logical, attribute = name.split(".", 1)
                return self.get_att(logical, attribute)
            return str(self.ref(name))

        # ``${!Literal}`` is CloudFormation's escape for a literal ``${Literal}``.
        return _SUB_VARIABLE.sub(replace, template).replace("${!", "${")


def _references(value: Any) -> Iterator[str]:
    """Every logical id (or pseudo parameter) ``value`` refers to."""
    if isinstance(value, dict):
        for key, arg in value.items():
            if key == "Ref" and isinstance(arg, str):
                yield arg
            elif key == "Fn::GetAtt":
                yield arg[0] if isinstance(arg, list) else str(arg).split(".", 1)[0]
            elif key == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                local = set() if isinstance(arg, str) else set(arg[1])
                for name in _SUB_VARIABLE.findall(text):
                    if name not in local:
                        yield name.split(".", 1)[0] if not name.startswith("AWS::") else name
            yield from _references(arg)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def creation_order(resources: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Logical ids in an order CloudFormation could create them: references and ``DependsOn`` first."""
    graph: dict[str, set[str]] = {}
    for logical, resource in resources.items():
        depends = resource.get("DependsOn", [])
        needed = {depends} if isinstance(depends, str) else set(depends)
        needed |= {name for name in _references(resource.get("Properties", {})) if name in resources}
        unknown = needed - set(resources)
        if unknown:
            raise TemplateError(f"{logical} depends on {', '.join(sorted(unknown))}, not in the template")
        graph[logical] = needed
    try:
        return list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as exc:
        raise TemplateError(f"circular dependency between resources: {' -> '.join(exc.args[1])}") from None
