"""The role that deletes a project's data (infra/delete_role.yml) in the packaged template: assumable
within the account only; it may list the bucket, read and delete under projects/ (versions too), and
nothing else. No function role may delete, no function runs as the deleter, and the bucket policy
denies no delete."""

from tests.deploy.cfn import as_list, bucket_pattern, by_type, resources_for, statements_by_role

DELETER = "ProjectDataDeleterRole"
BUCKET_ARN = {"Fn::GetAtt": ["ModelBucket", "Arn"]}
ACCOUNT_ROOT = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}


def test_the_deleter_role_is_assumed_from_this_account_only(packaged):
    role = packaged.resources[DELETER]["Properties"]
    assert role["RoleName"] == "ls-textcls-ci-project-data-deleter"
    assert role["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"AWS": ACCOUNT_ROOT}, "Action": "sts:AssumeRole"}]
    assert packaged.outputs["ProjectDataDeleterRoleArn"]["Value"] == {"Fn::GetAtt": [DELETER, "Arn"]}


def test_the_deleter_role_may_list_read_and_delete_under_projects_and_nothing_else(packaged):
    role = packaged.resources[DELETER]["Properties"]
    assert "ManagedPolicyArns" not in role
    statements = statements_by_role(packaged.resources)[DELETER]  # its inline policy and any attached AWS::IAM::Policy
    assert all(s["Effect"] == "Allow" and "NotAction" not in s and "NotResource" not in s for s in statements)
    granted = {action for s in statements for action in as_list(s["Action"])}
    assert granted == {"s3:ListBucket", "s3:ListBucketVersions", "s3:GetObject", "s3:DeleteObject", "s3:DeleteObjectVersion"}
    for action in ("s3:ListBucket", "s3:ListBucketVersions"):
        assert resources_for(statements, action) == [BUCKET_ARN]
    for action in ("s3:GetObject", "s3:DeleteObject", "s3:DeleteObjectVersion"):
        assert [bucket_pattern(r) for r in resources_for(statements, action)] == ["projects/*"]


def test_no_function_role_may_delete_and_no_function_runs_as_the_deleter(packaged):
    resources = packaged.resources
    function_roles = {f["Properties"]["Role"]["Fn::GetAtt"][0] for f in by_type(resources, "AWS::Lambda::Function").values()}
    assert function_roles == {"ApiRole", "TrainRole", "PredictRole"}
    granted = statements_by_role(resources)
    for role in function_roles:
        actions = {a for s in granted[role] if s["Effect"] == "Allow" for a in as_list(s["Action"])}
        assert not any(a.startswith("s3:") and ("Delete" in a or "*" in a) for a in actions), role
    # Every role that may delete an object is the deleter.
    def deletes(statement: dict) -> bool:
        return statement["Effect"] == "Allow" and any(a.startswith("s3:Delete") or a in ("s3:*", "*")
                                                      for a in as_list(statement["Action"]))

    deleters = {name for name, statements in granted.items() if any(map(deletes, statements))}
    assert deleters == {DELETER}


def test_the_bucket_policy_denies_no_delete(packaged):
    statements = packaged.resources["ModelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    for statement in statements:
        if statement["Effect"] != "Deny":
            continue
        actions = set(as_list(statement["Action"]))
        if statement.get("Sid") == "TlsOnly":  # every action, but only over plain HTTP
            assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
            continue
        assert actions == {"s3:PutObject", "s3:PutObjectTagging"}, statement.get("Sid")
