"""Every setting of the backend, read once from the environment.

Both Lambda functions, `make dev` and the tests build the same `Settings`; nothing else in
the package reads `os.environ`. Tests override `get_settings` (FastAPI dependency) or build
a `Settings(...)` directly.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


@dataclass(frozen=True)
class ModelParams:
    """Hyper-parameters of the TF-IDF + logistic regression pipeline (`functions.model.classifier`);
    the defaults are MODEL_PRESET=default.

    `solver` and `tol` choose how the logistic regression's optimum is found, not which model:
    on AG News, newton-cg with tol 1e-6 lands 2e-4 (max |Δp|) from the fully converged optimum
    in 3.1 s, where the tutorial's default lbfgs stops 5e-3 away after 17.7 s.
    """

    ngram_max: int = 2
    min_df: int = 2
    c: float = 3.0
    max_iter: int = 1000
    solver: str = "newton-cg"
    tol: float = 1e-6
    sublinear_tf: bool = True
    nb_weights: bool = True
    class_weight: str | None = "balanced"


# MODEL_PRESET -> the pipeline it names. "default" was chosen by bench/pipelines.py on the shared data
# sets (README, "A better default model"); "tutorial" is the original tutorial's
# make_pipeline(TfidfVectorizer(ngram_range=(1, 3)), LogisticRegression(C=10)) with scikit-learn's
# LogisticRegression defaults (lbfgs, max_iter 100, tol 1e-4), exactly.
PRESETS = {
    "default": ModelParams(),
    "tutorial": ModelParams(
        ngram_max=3, min_df=1, c=10.0, max_iter=100, solver="lbfgs", tol=1e-4, sublinear_tf=False, nb_weights=False, class_weight=None,
    ),
}


class Settings(BaseSettings):
    """Backend configuration; each field is read from the upper-case environment variable."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    model_store_uri: str = Field(
        "file://.model-store",
        description="Where models, annotation logs and job records live: file://<folder> or s3://<bucket>[/<prefix>].",
    )
    train_queue: str = Field(
        "local",
        description="Where training jobs go: `local` (in-process worker), an SQS FIFO queue URL or name, "
        "or `none` (jobs wait in the store for a train function invoked by hand).",
    )
    train_max_attempts: int = Field(
        3, ge=1, description="Deliveries of a training message before it is dead-lettered (the queue's maxReceiveCount)."
    )
    predict_queue: str = Field(
        "local",
        description="Where prediction-run work goes: `local` (worker threads in this process), an SQS (standard) "
        "queue URL or name consumed by the predict function, or `none` (runs wait in the store).",
    )
    predict_chunk_tasks: int = Field(
        1000, ge=1, le=10_000,
        description="Tasks per chunk of a prediction run: one Label Studio task page, one prediction import, "
        "one queue message (bounds a predict worker's memory).",
    )
    predict_after_training: bool | None = Field(
        None,
        description="Start a prediction run of the project after every successful training "
        "(unset: on when LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY are set).",
    )
    predict_max_attempts: int = Field(
        3, ge=1, description="Attempts of a prediction-run chunk before it counts its tasks failed (the predict "
        "queue's maxReceiveCount).",
    )

    basic_auth_user: str | None = Field(None, description="HTTP Basic user required on every endpoint but /health.")
    basic_auth_pass: SecretStr | None = Field(None, description="HTTP Basic password (needs BASIC_AUTH_USER; never empty).")
    webhook_secret: SecretStr | None = Field(
        None,
        description="Secret that Label Studio's project webhook carries (header X-Webhook-Secret, or the URL "
        "<backend>/webhook/<secret>); separate from the Basic-auth credentials.",
    )
    credentials_secret: str | None = Field(
        None,
        description="AWS Secrets Manager secret (name or ARN) holding JSON {basic_auth_user, basic_auth_pass, "
        "webhook_secret}; read at runtime and cached (the deployment sets it).",
    )
    credentials_ttl_seconds: float = Field(300.0, ge=0, description="How long credentials read from AWS are cached.")
    allow_unauthenticated: bool = Field(
        False,
        description="Serve without credentials even outside a loopback `make dev` (an explicit opt-out of fail-closed auth).",
    )
    aws_lambda_function_name: str | None = Field(
        None, description="Set by AWS Lambda in every function: the backend is deployed (never a local `make dev`)."
    )
    allowed_hosts: str | None = Field(
        None, description="Comma-separated Host header values the API answers (unset: any host; `make dev` on loopback: loopback names)."
    )
    label_studio_projects: str | None = Field(
        None,
        description="Comma-separated Label Studio project ids that Start Training may export (unset: the projects "
        "this backend has seen through an authenticated /setup).",
    )

    max_body_mb: float = Field(64.0, gt=0, description="Largest request body accepted, in MiB (413 beyond).")
    max_tasks_per_predict: int = Field(10_000, ge=1, description="Most tasks one /predict may carry (413 beyond).")
    predict_time_budget_seconds: float = Field(
        20.0, gt=0, description="A /predict whose texts would take longer than this to score is refused (413) and "
        "pointed to prediction runs (API Gateway ends a request at 30 s; Label Studio waits 100 s)."
    )
    max_text_chars: int = Field(
        100_000, ge=1, description="Longest task text accepted by /predict and the annotation log, in characters (422 beyond)."
    )
    max_ids_per_webhook: int = Field(1_000, ge=1, description="Most annotation ids one ANNOTATIONS_DELETED webhook may carry.")
    webhook_clock_skew_seconds: float = Field(
        300.0, ge=0, description="How far in the future a webhook's updated_at may lie (Label Studio's clock vs ours)."
    )
    max_training_tasks: int = Field(200_000, ge=1, description="Most annotated tasks one training job reads.")
    job_lease_seconds: float = Field(
        900.0, gt=0, description="A running job whose heartbeat is older than this (or a queued job older than the "
        "queue allows) is abandoned: it is failed with a reason and no longer swallows new Start Training requests.",
    )
    model_signing_key: SecretStr | None = Field(
        None, description="HMAC key that signs and verifies model versions locally (unset with no KMS key: a per-store key file)."
    )
    model_signing_kms_key: str | None = Field(
        None, description="KMS HMAC key (id or ARN): the train function signs versions (GenerateMac), the api verifies (VerifyMac)."
    )
    s3_connect_timeout: float = Field(1.0, gt=0, description="Seconds to connect to S3 (Label Studio gives /setup 3 s).")
    s3_read_timeout: float = Field(2.0, gt=0, description="Seconds S3 may stay silent while answering.")

    model_preset: Literal["default", "tutorial"] = Field(
        "default",
        description="The pipeline: default (word 1-2-grams, sublinear tf, min_df 2, NB feature weights, C=3, balanced class weights) or "
        "tutorial (the original tutorial's word 1-3-grams + LogisticRegression(C=10), exactly). The settings below override single values.",
    )
    tfidf_ngram_max: int | None = Field(None, ge=1, le=5, description="TfidfVectorizer ngram_range=(1, N) (preset: 2; tutorial 3).")
    tfidf_min_df: int | None = Field(
        None, ge=1, description="TfidfVectorizer min_df: drop n-grams seen in fewer tasks (preset: 2, from 50 examples up; tutorial 1)."
    )
    tfidf_sublinear_tf: bool | None = Field(None, description="TfidfVectorizer sublinear_tf (preset: true; tutorial false).")
    nb_weights: bool | None = Field(
        None, description="Scale features by Naive-Bayes log-count ratios before the regression (preset: true; tutorial false)."
    )
    lr_c: float | None = Field(None, gt=0, description="LogisticRegression C, inverse regularisation strength (preset: 3; tutorial 10).")
    lr_max_iter: int | None = Field(None, ge=10, description="LogisticRegression max_iter (preset: 1000; tutorial 100).")
    lr_solver: Literal["newton-cg", "lbfgs"] | None = Field(
        None, description="LogisticRegression solver: newton-cg (preset: fast on many features) or lbfgs (the tutorial's)."
    )
    lr_class_weight: Literal["balanced", "none"] | None = Field(
        None, description="LogisticRegression class_weight: balanced (preset: rare labels weigh as much as common ones) or none (tutorial)."
    )
    lr_tol: float | None = Field(None, gt=0, description="LogisticRegression tol, the solver's stopping tolerance (preset: 1e-6; tutorial 1e-4).")
    cross_validation_folds: int = Field(
        5, ge=0, le=20, description="Folds of the out-of-fold predictions that give quality, calibration, auto-label thresholds "
        "and suspects at every training (0 turns all four off; 1 is not allowed).",
    )

    @field_validator("cross_validation_folds")
    @classmethod
    def _folds(cls, value: int) -> int:
        if value == 1:
            raise ValueError("1 fold cannot predict anything out of fold: use 0 (off) or 2-20")
        return value
    calibrate_scores: bool = Field(
        True, description="Serve calibrated probabilities as score (Platt scaling fitted on the out-of-fold predictions)."
    )
    auto_label_target: float = Field(
        0.95, ge=0.5, lt=1, description="Accuracy the auto-label threshold of each control must reach on out-of-fold predictions."
    )
    suspects_limit: int = Field(50, ge=0, le=1000, description="Suspect annotations kept per control in each version's report.")
    multilabel_threshold: float = Field(
        0.5, gt=0, lt=1, description='choice="multiple" controls: predict every label whose probability reaches this.'
    )
    cold_start: bool = Field(
        False,
        description="Before the first training, predict with a model fitted on the label names themselves "
        "(the original tutorial's behaviour; its predictions are close to random).",
    )

    label_studio_url: str | None = Field(
        None, description="Label Studio base URL (path prefix included) to pull annotations from at START_TRAINING."
    )
    label_studio_api_key: SecretStr | None = Field(None, description="Label Studio personal access token (or legacy token).")
    label_studio_api_key_secret: str | None = Field(
        None, description="AWS Secrets Manager secret (ARN) whose SecretString is the Label Studio token; read at "
        "runtime by the train and predict functions (the deployment sets it instead of LABEL_STUDIO_API_KEY)."
    )
    label_studio_timeout: float = Field(300.0, gt=0, description="Seconds to wait for Label Studio's export.")

    pointer_ttl_seconds: float = Field(
        2.0, ge=0, description="How long the API trusts its cached copy of a project's serving version."
    )
    model_cache_size: int = Field(8, ge=1, description="Fitted models the API keeps in memory (LRU).")
    host: str = Field("127.0.0.1", description="`make dev` listen address (0.0.0.0 to reach it from a Label Studio container).")
    port: int = Field(9090, ge=1, le=65535, description="`make dev` port.")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Python log level.")


    def runs_after_training(self) -> bool:
        """PREDICT_AFTER_TRAINING, defaulting to on when Label Studio credentials are set."""
        if self.predict_after_training is not None:
            return self.predict_after_training
        return self.label_studio_configured()

    def label_studio_configured(self) -> bool:
        """LABEL_STUDIO_URL and a token (LABEL_STUDIO_API_KEY or LABEL_STUDIO_API_KEY_SECRET) are set."""
        token = self.label_studio_api_key or (self.label_studio_api_key_secret or "").strip()
        return bool((self.label_studio_url or "").strip() and token)

    def cold_start_c(self) -> float:
        """C of the COLD_START label-name model: LR_C if set, else the tutorial's (its cold start is the tutorial's)."""
        return self.lr_c if self.lr_c is not None else PRESETS["tutorial"].c

    def model_params(self) -> ModelParams:
        """The pipeline's hyper-parameters: MODEL_PRESET, with each TFIDF_* / NB_WEIGHTS / LR_* setting that is set."""
        overrides = {
            "ngram_max": self.tfidf_ngram_max, "min_df": self.tfidf_min_df, "sublinear_tf": self.tfidf_sublinear_tf,
            "nb_weights": self.nb_weights, "class_weight": self.lr_class_weight, "c": self.lr_c, "max_iter": self.lr_max_iter, "solver": self.lr_solver, "tol": self.lr_tol,
        }
        chosen = {name: value for name, value in overrides.items() if value is not None}
        if chosen.get("class_weight") == "none":
            chosen["class_weight"] = None
        return replace(PRESETS[self.model_preset], **chosen)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return Settings()


def describe_settings_error(error: Exception) -> str:
    """One line naming each invalid setting as its environment variable, e.g.
    ``CROSS_VALIDATION_FOLDS: Value error, 1 fold …`` (for a pydantic ValidationError)."""
    errors = getattr(error, "errors", None)
    if errors is None:
        return str(error)
    return "; ".join(f"{'.'.join(map(str, e['loc'])).upper() or 'SETTINGS'}: {e['msg']}" for e in errors())
