"""``GET /health``: liveness for Label Studio (1 s timeout). No store access, no scikit-learn."""

from fastapi import APIRouter

router = APIRouter(tags=["label-studio"])


@router.get("/health")
async def health() -> dict[str, str]:
    """Liveness: no store access, no scikit-learn."""
    return {"status": "UP", "model_class": "TfidfLogisticRegression"}
