"""What `sls package` (and so `sls deploy`) builds for a safe deployment, checked on the compiled
CloudFormation template of the one shared package build (conftest `packaged`: a generated
credentials secret, built from a shell with BASIC_AUTH_* set), on the resolved configuration of
the other credential modes (`sls print`, seconds), and on the failures when nothing is chosen:

- credentials: only in Secrets Manager, read by the api role only; no plain text anywhere;
  packaging without credentials and without the explicit opt-out fails with a clear message;
- cost guards: API Gateway throttling, reserved concurrency of both functions;
- signed artifacts: a KMS HMAC key that only the train role signs with and the api role only
  verifies with; a bucket policy that lets only the train role (and the root user) publish;
- expiring objects: one generic tag-based lifecycle rule, taggable by the roles outside models.
"""

from __future__ import annotations

import json

import pytest

from tests.deploy.cfn import actions, as_list, bucket_pattern, by_type, resources_for, s3_matches, statements_by_role
from tests.deploy.conftest import CANARY_PASS, CANARY_USER

MISSING = "No credentials are configured for the API"
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ls-credentials-AbC123"
ROOT_ARN = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}
KEY_ARN = {"Fn::GetAtt": ["ModelSigningKey", "Arn"]}
TRAIN_ROLE_ARN = {"Fn::GetAtt": ["TrainRole", "Arn"]}


def functions(resources: dict) -> dict[str, dict]:
    """`api` / `train` → the properties of its AWS::Lambda::Function."""
    return {r["Properties"]["Handler"].split("/")[1]: r["Properties"] for r in by_type(resources, "AWS::Lambda::Function").values()}


def environment(resources: dict, function: str) -> dict:
    return functions(resources)[function]["Environment"]["Variables"]


# --- credentials: fail closed at package time ----------------------------------------------------


def test_packaging_without_credentials_and_without_the_opt_out_fails_with_the_message(sls, sls_env, tmp_path):
    out = tmp_path / "package"
    env = sls_env | {"BASIC_AUTH_USER": "someone", "BASIC_AUTH_PASS": "a password"}  # no longer counts
    done = sls("package", "--package", str(out), env=env)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert MISSING in output
    for option in ('--param="credentials=generate"', '--param="credentials=<secret ARN>"', '--param="allowUnauthenticated=true"'):
        assert option in output
    assert "BASIC_AUTH_USER / BASIC_AUTH_PASS are not read at deploy time" in output
    assert "a password" not in output
    assert not out.exists()  # stopped before building anything


def test_deploying_without_credentials_fails_before_anything_reaches_aws(sls, sls_env):
    # Dummy keys: if the guard did not stop `deploy` first, it would try AWS and fail differently.
    env = sls_env | {"AWS_ACCESS_KEY_ID": "AKIADUMMYDUMMYDUMMY0", "AWS_SECRET_ACCESS_KEY": "dummy", "AWS_EC2_METADATA_DISABLED": "true"}
    done = sls("deploy", env=env)
    assert done.returncode != 0 and MISSING in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["credentials=my-secret"], 'neither "generate" nor the complete ARN'),
        (["credentials=arn:aws:secretsmanager:us-east-1:123456789012:secret:ls-credentials"], "complete ARN"),
        (["credentials=generate", "allowUnauthenticated=true"], "choose one"),
        (["credentials=generate", "basicAuthUser=with:colon"], "basicAuthUser must be"),
        (["allowUnauthenticated=yes"], 'allowUnauthenticated must be "true" or "false"'),
    ],
)
def test_unusable_credential_params_fail_packaging_with_a_clear_message(sls, tmp_path, params, message):
    done = sls("package", "--package", str(tmp_path / "package"), *(f"--param={p}" for p in params))
    assert done.returncode != 0
    assert message in done.stdout + done.stderr


# --- credentials: where they live and who reads them ---------------------------------------------


def test_no_credential_is_in_the_template_or_any_environment_variable(packaged):
    # The canaries were in the deploying shell's BASIC_AUTH_USER/BASIC_AUTH_PASS.
    for path in packaged.folder.rglob("*.json"):
        text = path.read_text()
        assert CANARY_PASS not in text and CANARY_USER not in text, path
    assert CANARY_PASS not in packaged.log
    assert "never reads them" in packaged.log  # the deployer is told
    for function in ("api", "train"):
        variables = environment(packaged.resources, function)
        assert not {"BASIC_AUTH_USER", "BASIC_AUTH_PASS", "WEBHOOK_SECRET", "MODEL_SIGNING_KEY", "ALLOW_UNAUTHENTICATED"} & variables.keys()
        for name, value in variables.items():
            assert isinstance(value, str) or value == {"Ref": "CredentialsSecret"}, name
    for secret in by_type(packaged.resources, "AWS::SecretsManager::Secret").values():
        assert "SecretString" not in secret["Properties"]  # generated by Secrets Manager, never written in the template
    assert "ssm-secure" not in packaged.template_text


def test_the_stack_generates_the_secret_and_the_api_function_names_it(packaged):
    resources = packaged.resources
    assert environment(resources, "api")["CREDENTIALS_SECRET"] == {"Ref": "CredentialsSecret"}
    assert "CREDENTIALS_SECRET" not in environment(resources, "train")
    generated = resources["CredentialsSecret"]["Properties"]["GenerateSecretString"]
    assert generated["GenerateStringKey"] == "basic_auth_pass" and generated["PasswordLength"] >= 32
    template = "".join(p if isinstance(p, str) else json.dumps(p) for p in generated["SecretStringTemplate"]["Fn::Join"][1])
    assert template.startswith('{"basic_auth_user": "labelstudio", "webhook_secret": "{{resolve:secretsmanager:')
    assert '{"Ref": "WebhookSecretSeed"}:SecretString}}"}' in template  # a second generated value
    assert resources["WebhookSecretSeed"]["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32
    command = packaged.outputs["ReadCredentialsCommand"]["Value"]["Fn::Join"][1]
    assert command[0].startswith("aws secretsmanager get-secret-value") and {"Ref": "CredentialsSecret"} in command
    assert packaged.outputs["CredentialsSecretArn"]["Value"] == {"Ref": "CredentialsSecret"}


def test_only_the_api_role_may_read_the_secret_and_only_that_secret(packaged):
    granted = statements_by_role(packaged.resources)
    assert not actions(granted["TrainRole"], "secretsmanager:")
    assert actions(granted["ApiRole"], "secretsmanager:") == {"secretsmanager:GetSecretValue"}
    assert resources_for(granted["ApiRole"], "secretsmanager:GetSecretValue") == [{"Ref": "CredentialsSecret"}]
    assert "WebhookSecretSeed" not in json.dumps(granted)  # the seed is read by CloudFormation only
    assert "ApiCredentialsPolicy" in as_list(packaged.resources["ApiLambdaFunction"]["DependsOn"])


def test_an_existing_secret_is_referenced_by_its_arn(sls_print):
    config = sls_print(f"credentials={ARN}")
    assert config["functions"]["api"]["environment"] == {"CREDENTIALS_SECRET": ARN}
    resources = config["resources"]["Resources"]
    assert "CredentialsSecret" not in resources and "WebhookSecretSeed" not in resources
    (statement,) = resources["ApiCredentialsPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement == {"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": ARN}
    assert resources["ApiCredentialsPolicy"]["Properties"]["Roles"] == [{"Ref": "ApiRole"}]
    assert ARN in config["resources"]["Outputs"]["ReadCredentialsCommand"]["Value"]


def test_the_explicit_opt_out_deploys_no_secret_and_says_so(sls_print):
    config = sls_print("allowUnauthenticated=true")
    assert config["functions"]["api"]["environment"] == {"ALLOW_UNAUTHENTICATED": "true"}
    assert not by_type(config["resources"]["Resources"], "AWS::SecretsManager::Secret")
    assert "secretsmanager" not in json.dumps(config["resources"]["Resources"])
    assert config["resources"]["Outputs"]["Authentication"]["Value"].startswith("NONE")


# --- cost guards ----------------------------------------------------------------------------------


def test_the_http_api_is_throttled(packaged):
    (stage,) = by_type(packaged.resources, "AWS::ApiGatewayV2::Stage").values()
    settings = stage["Properties"]["DefaultRouteSettings"]
    assert settings["ThrottlingRateLimit"] == 20 and settings["ThrottlingBurstLimit"] == 40
    assert stage["Properties"]["StageName"] == "$default"  # the stage every route of the API is served from


def test_both_functions_have_reserved_concurrency_and_train_stays_within_the_queue_bound(packaged):
    fns = functions(packaged.resources)
    assert fns["api"]["ReservedConcurrentExecutions"] == 10
    (mapping,) = by_type(packaged.resources, "AWS::Lambda::EventSourceMapping").values()
    assert fns["train"]["ReservedConcurrentExecutions"] == mapping["Properties"]["ScalingConfig"]["MaximumConcurrency"] == 2


def test_the_cost_guards_are_params(sls_print):
    config = sls_print("allowUnauthenticated=true", "apiThrottleRate=5", "apiThrottleBurst=9", "apiConcurrency=3", "trainConcurrency=4")
    settings = config["resources"]["extensions"]["HttpApiStage"]["Properties"]["DefaultRouteSettings"]
    assert (int(settings["ThrottlingRateLimit"]), int(settings["ThrottlingBurstLimit"])) == (5, 9)
    assert int(config["functions"]["api"]["reservedConcurrency"]) == 3
    assert int(config["functions"]["train"]["reservedConcurrency"]) == 4
    assert int(config["functions"]["train"]["events"][0]["sqs"]["maximumConcurrency"]) == 4


# --- signed artifacts -----------------------------------------------------------------------------


def test_a_kms_hmac_key_signs_and_both_functions_find_it_by_alias(packaged):
    resources = packaged.resources
    key = resources["ModelSigningKey"]
    assert key["Properties"]["KeySpec"] == "HMAC_256" and key["Properties"]["KeyUsage"] == "GENERATE_VERIFY_MAC"
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"  # models it signed stay verifiable
    alias = resources["ModelSigningKeyAlias"]["Properties"]
    assert alias["TargetKeyId"] == {"Ref": "ModelSigningKey"}
    assert environment(resources, "api")["MODEL_SIGNING_KMS_KEY"] == environment(resources, "train")["MODEL_SIGNING_KMS_KEY"] == alias["AliasName"]
    assert alias["AliasName"] == "alias/ls-textcls-ci-model-signing"


def test_only_the_train_role_signs_and_the_api_role_only_verifies(packaged):
    granted = statements_by_role(packaged.resources)
    assert actions(granted["ApiRole"], "kms:") == {"kms:VerifyMac"}
    assert "kms:GenerateMac" in actions(granted["TrainRole"], "kms:")
    assert actions(granted["TrainRole"], "kms:") <= {"kms:GenerateMac", "kms:VerifyMac"}
    for role in ("ApiRole", "TrainRole"):
        for action in actions(granted[role], "kms:"):
            assert resources_for(granted[role], action) == [KEY_ARN]  # that key only, never "*"
    # The key policy denies signing to everyone else, whatever their IAM policies grant.
    statements = {s["Sid"]: s for s in packaged.resources["ModelSigningKey"]["Properties"]["KeyPolicy"]["Statement"]}
    deny = statements["OnlyTheTrainRoleSigns"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*" and as_list(deny["Action"]) == ["kms:GenerateMac"]
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": TRAIN_ROLE_ARN}}
    assert "TrainSigningPolicy" in as_list(packaged.resources["TrainLambdaFunction"]["DependsOn"])


def test_the_bucket_policy_lets_only_the_train_role_and_the_root_user_publish(packaged):
    resources = packaged.resources
    statements = resources["ModelBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    (deny,) = [s for s in statements if s.get("Sid") == "OnlyTheTrainRolePublishesModels"]
    assert deny["Effect"] == "Deny" and deny["Principal"] == "*"
    assert set(as_list(deny["Action"])) == {"s3:PutObject", "s3:PutObjectTagging"}
    protected = {bucket_pattern(r) for r in deny["Resource"]}
    assert protected == {"projects/*/models/*", "projects/*/latest.json"}
    assert deny["Condition"] == {"ArnNotEquals": {"aws:PrincipalArn": [TRAIN_ROLE_ARN, ROOT_ARN]}}
    # Nobody is locked out: every other Deny is the TLS one, and nothing denies managing the policy.
    for statement in statements:
        if statement is not deny:
            assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert not any("PutBucketPolicy" in a or a == "s3:*" for a in as_list(deny["Action"]))

    granted = statements_by_role(resources)
    train_writes = {bucket_pattern(r) for r in resources_for(granted["TrainRole"], "s3:PutObject")}
    assert protected <= train_writes
    keys = ["projects/7/models/7-v3/manifest.json", "projects/7/models/7-v3/signature.json", "projects/7/latest.json"]
    for pattern in (bucket_pattern(r) for r in resources_for(granted["ApiRole"], "s3:PutObject") + resources_for(granted["ApiRole"], "s3:PutObjectTagging")):
        assert pattern and not any(s3_matches(pattern, key) for key in keys), pattern
    # ...and what the api writes is not caught by the Deny.
    for key in ["projects/7/annotations/12.json", "projects/7/deleted_annotations/3.json", "projects/7/jobs/j1.json",
                "projects/7/requests/j1.json", "projects/7/queued_job.json", "projects/7/connected.json"]:
        assert not any(s3_matches(pattern, key) for pattern in protected), key


# --- expiring objects -----------------------------------------------------------------------------


def test_one_generic_rule_expires_every_object_tagged_expiring(packaged):
    resources = packaged.resources
    rules = resources["ModelBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
    tagged = [r for r in rules if r.get("TagFilters")]
    (rule,) = tagged
    assert rule["TagFilters"] == [{"Key": "lifecycle", "Value": "expiring"}] and "Prefix" not in rule
    assert rule["Status"] == "Enabled" and 1 <= rule["ExpirationInDays"] <= 30
    assert rule["NoncurrentVersionExpiration"]["NoncurrentDays"] <= 7
    # Only tagged objects ever expire; the others lose old versions only.
    assert all("ExpirationInDays" not in r for r in rules if r is not rule)
    # The roles may tag what should expire (staged requests, job records), never a model or pointer.
    granted = statements_by_role(resources)
    api_tags = {bucket_pattern(r) for r in resources_for(granted["ApiRole"], "s3:PutObjectTagging")}
    train_tags = {bucket_pattern(r) for r in resources_for(granted["TrainRole"], "s3:PutObjectTagging")}
    assert api_tags == {"projects/*/requests/*", "projects/*/jobs/*", "projects/*/queued_job.json"}  # the one-queued-job slot
    assert train_tags == {"projects/*/jobs/*"}
