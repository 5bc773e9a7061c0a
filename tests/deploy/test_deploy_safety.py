"""What `sls package` (and so `sls deploy`) builds for a safe deployment, checked on the compiled
CloudFormation template of the one shared package build (conftest `packaged`: a generated
credentials secret, built from a shell with BASIC_AUTH_* set), on the resolved configuration of
the other credential modes (`sls print`, seconds), and on the failures when nothing is chosen:

- credentials: only in Secrets Manager, read by the api role only; no plain text anywhere;
  packaging without credentials and without the explicit opt-out fails with a clear message;
- cost guards: API Gateway throttling, reserved concurrency of the three functions (or of none, for
  accounts with a low concurrency quota);
- signed artifacts: a KMS HMAC key that only the train role signs with and the api and predict roles
  only verify with; a bucket policy that lets only the train role (and the root user) publish, and
  does not catch prediction-run records;
- Label Studio's token: only a secret's ARN in the environment, readable by train and predict only;
- expiring objects: one generic tag-based lifecycle rule, taggable by the roles outside models.
"""

from __future__ import annotations

import json

import pytest

from tests.deploy.cfn import actions, as_list, bucket_pattern, by_type, event_source_mappings, resources_for, s3_matches, statements_by_role
from tests.deploy.conftest import CANARY_PASS, CANARY_USER

MISSING = "No credentials are configured for the API"
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ls-credentials-AbC123"
ROOT_ARN = {"Fn::Join": ["", ["arn:", {"Ref": "AWS::Partition"}, ":iam::", {"Ref": "AWS::AccountId"}, ":root"]]}
KEY_ARN = {"Fn::GetAtt": ["ModelSigningKey", "Arn"]}
TRAIN_ROLE_ARN = {"Fn::GetAtt": ["TrainRole", "Arn"]}
LS_TOKEN_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:ls-token-XyZ789"
FUNCTIONS = ("api", "train", "predict")


def functions(resources: dict) -> dict[str, dict]:
    """`api` / `train` / `predict` → the properties of its AWS::Lambda::Function."""
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
    (["credentials=generate", "labelStudioApiKeySecret=my-personal-access-token"], "labelStudioApiKeySecret must be the complete ARN"),
    (["credentials=generate", "reservedConcurrency=no"], 'reservedConcurrency must be "true" or "false"'),
    (["credentials=generate", "predictConcurrency=0"], "predictConcurrency must be a whole number of at least 1"),
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
    for function in FUNCTIONS:
        variables = environment(packaged.resources, function)
        assert not {"BASIC_AUTH_USER", "BASIC_AUTH_PASS", "WEBHOOK_SECRET", "MODEL_SIGNING_KEY", "ALLOW_UNAUTHENTICATED",
                    "LABEL_STUDIO_API_KEY"} & variables.keys()
        for name, value in variables.items():
            assert isinstance(value, str) or value in ({"Ref": "CredentialsSecret"}, {"Ref": "PredictQueue"}), name
    for secret in by_type(packaged.resources, "AWS::SecretsManager::Secret").values():
        assert "SecretString" not in secret["Properties"]  # generated by Secrets Manager, never written in the template
    assert "ssm-secure" not in packaged.template_text


def test_the_stack_generates_the_secret_and_the_api_function_names_it(packaged):
    resources = packaged.resources
    assert environment(resources, "api")["CREDENTIALS_SECRET"] == {"Ref": "CredentialsSecret"}
    assert "CREDENTIALS_SECRET" not in environment(resources, "train")
    assert "CREDENTIALS_SECRET" not in environment(resources, "predict")
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
    assert not actions(granted["TrainRole"], "secretsmanager:") and not actions(granted["PredictRole"], "secretsmanager:")
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


def test_every_function_has_reserved_concurrency_and_the_workers_stay_within_their_queue_bound(packaged):
    fns = functions(packaged.resources)
    assert fns["api"]["ReservedConcurrentExecutions"] == 10
    mappings = event_source_mappings(packaged.resources)
    assert fns["train"]["ReservedConcurrentExecutions"] == mappings["TrainQueue"]["ScalingConfig"]["MaximumConcurrency"] == 2
    assert fns["predict"]["ReservedConcurrentExecutions"] == mappings["PredictQueue"]["ScalingConfig"]["MaximumConcurrency"] == 10


def test_the_cost_guards_are_params(sls_print):
    config = sls_print("allowUnauthenticated=true", "apiThrottleRate=5", "apiThrottleBurst=9", "apiConcurrency=3", "trainConcurrency=4",
                       "predictConcurrency=7")
    settings = config["resources"]["extensions"]["HttpApiStage"]["Properties"]["DefaultRouteSettings"]
    assert (int(settings["ThrottlingRateLimit"]), int(settings["ThrottlingBurstLimit"])) == (5, 9)
    assert int(config["functions"]["api"]["reservedConcurrency"]) == 3
    assert int(config["functions"]["train"]["reservedConcurrency"]) == 4
    assert int(config["functions"]["train"]["events"][0]["sqs"]["maximumConcurrency"]) == 4
    assert int(config["functions"]["predict"]["reservedConcurrency"]) == 7
    assert int(config["functions"]["predict"]["events"][0]["sqs"]["maximumConcurrency"]) == 7


def test_accounts_with_a_low_concurrency_quota_can_reserve_nothing(sls_print):
    """AWS keeps 100 executions unreserved, so reserving 10 + 2 + 10 needs a quota of 122; new accounts
    start at 10. reservedConcurrency=false drops every reservation (0 would stop a function instead);
    the queues' maximumConcurrency still bounds the workers."""
    config = sls_print("allowUnauthenticated=true", "reservedConcurrency=false")
    for name in FUNCTIONS:
        assert config["functions"][name].get("reservedConcurrency") is None, name
    assert int(config["functions"]["train"]["events"][0]["sqs"]["maximumConcurrency"]) == 2
    assert int(config["functions"]["predict"]["events"][0]["sqs"]["maximumConcurrency"]) == 10


# --- signed artifacts -----------------------------------------------------------------------------


def test_a_kms_hmac_key_signs_and_every_function_finds_it_by_alias(packaged):
    resources = packaged.resources
    key = resources["ModelSigningKey"]
    assert key["Properties"]["KeySpec"] == "HMAC_256" and key["Properties"]["KeyUsage"] == "GENERATE_VERIFY_MAC"
    assert key["DeletionPolicy"] == key["UpdateReplacePolicy"] == "Retain"  # models it signed stay verifiable
    alias = resources["ModelSigningKeyAlias"]["Properties"]
    assert alias["TargetKeyId"] == {"Ref": "ModelSigningKey"}
    assert {environment(resources, name)["MODEL_SIGNING_KMS_KEY"] for name in FUNCTIONS} == {alias["AliasName"]}
    assert alias["AliasName"] == "alias/ls-textcls-ci-model-signing"


def test_only_the_train_role_signs_and_the_api_and_predict_roles_only_verify(packaged):
    granted = statements_by_role(packaged.resources)
    assert actions(granted["ApiRole"], "kms:") == actions(granted["PredictRole"], "kms:") == {"kms:VerifyMac"}
    assert "kms:GenerateMac" in actions(granted["TrainRole"], "kms:")
    assert actions(granted["TrainRole"], "kms:") <= {"kms:GenerateMac", "kms:VerifyMac"}
    for role in ("ApiRole", "TrainRole", "PredictRole"):
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
    for role in ("ApiRole", "PredictRole"):
        for pattern in (bucket_pattern(r) for r in resources_for(granted[role], "s3:PutObject") + resources_for(granted[role], "s3:PutObjectTagging")):
            assert pattern and not any(s3_matches(pattern, key) for key in keys), (role, pattern)
    # ...and what the api and predict write (prediction-run records too) is not caught by the Deny.
    runs = ["projects/7/runs/r1.json", "projects/7/runs/r1/chunks/0.json", "projects/7/runs/r1/chunks/99.json"]
    for key in ["projects/7/annotations/12.json", "projects/7/deleted_annotations/3.json", "projects/7/jobs/j1.json",
                "projects/7/requests/j1.json", "projects/7/queued_job.json", "projects/7/connected.json", *runs]:
        assert not any(s3_matches(pattern, key) for pattern in protected), key
    # Who writes run records: api (queued), train (the run after publishing), predict (progress, chunks).
    for role in ("ApiRole", "TrainRole", "PredictRole"):
        patterns = [bucket_pattern(r) for r in resources_for(granted[role], "s3:PutObject")]
        assert all(any(s3_matches(p, key) for p in patterns) for key in runs), role
    predict_writes = {bucket_pattern(r) for r in resources_for(granted["PredictRole"], "s3:PutObject")}
    assert predict_writes == {"projects/*/runs/*"}  # nothing else: no job record, annotation, model or pointer
    # The api writes the pin (which published version serves) and nothing of a model or the pointer.
    api_writes = [bucket_pattern(r) for r in resources_for(granted["ApiRole"], "s3:PutObject")]
    assert any(s3_matches(p, "projects/7/serving.json") for p in api_writes)
    assert not any(s3_matches(p, "projects/7/serving.json") for p in protected)
    assert not any(s3_matches(p, "projects/7/serving.json") for p in predict_writes)


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
    predict_tags = {bucket_pattern(r) for r in resources_for(granted["PredictRole"], "s3:PutObjectTagging")}
    assert api_tags == {"projects/*/requests/*", "projects/*/jobs/*", "projects/*/queued_job.json", "projects/*/runs/*"}  # the one-queued-job slot
    assert train_tags == {"projects/*/jobs/*", "projects/*/runs/*"}
    assert predict_tags == {"projects/*/runs/*"}


# --- Label Studio's token ----------------------------------------------------------------------------


def test_without_label_studio_params_no_role_reads_a_token_and_nothing_is_configured(packaged):
    resources = packaged.resources
    for name in FUNCTIONS:
        variables = environment(resources, name)
        assert variables["LABEL_STUDIO_URL"] == variables["LABEL_STUDIO_API_KEY_SECRET"] == variables["LABEL_STUDIO_PROJECTS"] == "", name
    assert "LabelStudioApiKeyPolicy" not in resources
    granted = statements_by_role(resources)
    assert not actions(granted["TrainRole"], "secretsmanager:") and not actions(granted["PredictRole"], "secretsmanager:")


def test_the_label_studio_token_is_a_secret_read_by_train_and_predict_only(sls_print):
    """The token never is in the template or an environment variable: the functions get the secret's
    ARN; only the roles that call Label Studio (train pulls, runs after training; predict pages tasks
    and imports predictions) may read it. The URL is not a secret."""
    config = sls_print("allowUnauthenticated=true", "labelStudioUrl=https://ls.example.org/prefix",
                       f"labelStudioApiKeySecret={LS_TOKEN_ARN}", "labelStudioProjects=12,15")
    variables = config["provider"]["environment"]
    assert variables["LABEL_STUDIO_URL"] == "https://ls.example.org/prefix"
    assert variables["LABEL_STUDIO_API_KEY_SECRET"] == LS_TOKEN_ARN and "LABEL_STUDIO_API_KEY" not in variables
    assert variables["LABEL_STUDIO_PROJECTS"] == "12,15"
    for name in FUNCTIONS:
        assert "LABEL_STUDIO_API_KEY" not in (config["functions"][name].get("environment") or {}), name
    granted = statements_by_role(config["resources"]["Resources"])
    for role in ("TrainRole", "PredictRole"):
        assert actions(granted[role], "secretsmanager:") == {"secretsmanager:GetSecretValue"}, role
        assert resources_for(granted[role], "secretsmanager:GetSecretValue") == [LS_TOKEN_ARN], role
    assert not actions(granted["ApiRole"], "secretsmanager:")  # unauthenticated here: no credentials secret either
