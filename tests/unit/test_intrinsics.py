"""CloudFormation's intrinsics and creation order, as the embedded deploy resolves them."""

from __future__ import annotations

import pytest

from vaultline_dev.embedded.intrinsics import Resolver, TemplateError, creation_order, pseudo_parameters


def _resolver() -> Resolver:
    resolver = Resolver(pseudo_parameters("123456789012", "eu-west-1", "Vaultline"))
    resolver.refs["Bucket"] = "vaultline-bucket"
    resolver.attributes["Bucket"] = {"Arn": "arn:aws:s3:::vaultline-bucket"}
    return resolver


def test_no_value_removes_the_property_and_the_list_item() -> None:
    resolved = _resolver()({"A": {"Ref": "AWS::NoValue"}, "B": ["x", {"Ref": "AWS::NoValue"}], "C": 1})
    assert resolved == {"B": ["x"], "C": 1}


def test_sub_resolves_refs_attributes_and_keeps_escaped_literals() -> None:
    text = _resolver()({"Fn::Sub": "${Bucket}/${Bucket.Arn}/${AWS::Region}/${!Literal}"})
    assert text == "vaultline-bucket/arn:aws:s3:::vaultline-bucket/eu-west-1/${Literal}"


def test_a_ref_to_nothing_created_fails() -> None:
    with pytest.raises(TemplateError, match="Ref Missing"):
        _resolver()({"Fn::Sub": "${Missing}"})


def test_sub_with_variables_and_join_select_split() -> None:
    resolve = _resolver()
    assert resolve({"Fn::Sub": ["${X}-${Bucket}", {"X": "v"}]}) == "v-vaultline-bucket"
    assert resolve({"Fn::Select": [1, {"Fn::Split": [":", {"Fn::GetAtt": ["Bucket", "Arn"]}]}]}) == "aws"
    assert resolve({"Fn::Join": ["/", ["a", {"Ref": "Bucket"}]]}) == "a/vaultline-bucket"


def test_an_attribute_the_resource_does_not_have_fails() -> None:
    with pytest.raises(TemplateError, match=r"Bucket\.WebsiteURL: not an attribute"):
        _resolver()({"Fn::GetAtt": ["Bucket", "WebsiteURL"]})


def test_an_unresolved_intrinsic_fails() -> None:
    with pytest.raises(TemplateError, match="Fn::ImportValue"):
        _resolver()({"Fn::ImportValue": "Shared"})


def test_creation_order_follows_references_and_depends_on() -> None:
    resources = {
        "Function": {"Type": "T", "DependsOn": ["Policy"], "Properties": {"Role": {"Fn::GetAtt": ["Role", "Arn"]}}},
        "Policy": {"Type": "T", "Properties": {"Roles": [{"Ref": "Role"}]}},
        "Role": {"Type": "T", "Properties": {"Name": {"Fn::Sub": "${AWS::StackName}-role"}}},
        "Machine": {"Type": "T", "Properties": {"Definition": {"Fn::Sub": "${Function.Arn}"}}},
    }
    order = creation_order(resources)
    assert order.index("Role") < order.index("Policy") < order.index("Function") < order.index("Machine")


def test_a_dependency_cycle_fails() -> None:
    resources = {
        "A": {"Type": "T", "Properties": {"X": {"Ref": "B"}}},
        "B": {"Type": "T", "Properties": {"X": {"Ref": "A"}}},
    }
    with pytest.raises(TemplateError, match="circular dependency"):
        creation_order(resources)
