"""A check by hand against a real Label Studio 1.23.2 (not in CI): connect this backend's
`make dev` process, import 301 AG News tasks (one without text), annotate 120 through the API,
press Start Training (POST /api/ml/<id>/train), and wait until every task with text holds
exactly one prediction of the new version, without Retrieve Predictions.

    python3 -m venv /tmp/ls && /tmp/ls/bin/pip install label-studio==1.23.2
    ML_BLOCK_LOCAL_IP=false SSRF_PROTECTION_ENABLED=false /tmp/ls/bin/label-studio start --port 8085 --no-browser
    LS_URL=http://127.0.0.1:8085 LS_PAT=<personal access token> .venv/bin/python bench/real_label_studio_check.py
"""
import json, os, subprocess, sys, time, tempfile
import httpx

LS = os.environ.get("LS_URL", "http://127.0.0.1:8085")
PAT = os.environ["LS_PAT"]
PORT = 9097
SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared", "data", "ag_news")
store = tempfile.mkdtemp(prefix="real-ls-store-")
access = httpx.post(f"{LS}/api/token/refresh/", json={"refresh": PAT}).json()["access"]
ls = httpx.Client(base_url=LS, headers={"Authorization": f"Bearer {access}"}, timeout=60)
config = open(os.path.join(SHARED, "label_config.xml")).read()
data = json.load(open(os.path.join(SHARED, "labeled_train.json")))[:300]

env = dict(os.environ, PORT=str(PORT), HOST="127.0.0.1", MODEL_STORE_URI=f"file://{store}", LABEL_STUDIO_URL=LS,
           LABEL_STUDIO_API_KEY=PAT, OPENBLAS_NUM_THREADS="1", LOG_LEVEL="INFO")
server = subprocess.Popen([sys.executable, "-m", "functions.dev"], cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env=env,
                          stdout=open("/tmp/real_ls_backend.log", "w"), stderr=subprocess.STDOUT)
try:
    for _ in range(60):
        try:
            if httpx.get(f"http://127.0.0.1:{PORT}/health").status_code == 200: break
        except httpx.HTTPError: pass
        time.sleep(0.5)
    project = ls.post("/api/projects", json={"title": f"e2e {time.time():.0f}", "label_config": config}).json()["id"]
    tasks = [{"text": t["data"]["text"]} for t in data] + [{"text": ""}]  # one task without text
    print("import:", ls.post(f"/api/projects/{project}/import", json=tasks).json())
    ml = ls.post("/api/ml", json={"url": f"http://127.0.0.1:{PORT}", "project": project, "title": "tfidf"})
    print("connect:", ml.status_code, ml.json().get("state"), ml.json().get("model_version"))
    ml_id = ml.json()["id"]
    listed = ls.get("/api/tasks", params={"project": project, "page_size": 1000, "fields": "all"}).json()["tasks"]
    by_text = {t["data"]["text"]: t["id"] for t in listed}
    labels = {t["data"]["text"]: t["annotations"][0]["result"][0]["value"]["choices"][0] for t in data}
    control = "topic" if "name=\"topic\"" in config else None
    from xml.etree import ElementTree as ET
    root = ET.fromstring(config); ch = root.find(".//Choices"); txt = root.find(".//Text")
    annotated = 0
    for text, label in list(labels.items())[:120]:
        r = ls.post(f"/api/tasks/{by_text[text]}/annotations", json={"result": [{"from_name": ch.get("name"), "to_name": txt.get("name"), "type": "choices", "value": {"choices": [label]}}]})
        annotated += r.status_code == 201
    print("annotated:", annotated)
    old = ls.get(f"/api/ml/{ml_id}").json().get("model_version")
    t0 = time.time()
    train = ls.post(f"/api/ml/{ml_id}/train")
    print("Start Training:", train.status_code, train.text[:200])
    deadline = time.time() + 180
    while time.time() < deadline:
        time.sleep(2)
        access = httpx.post(f"{LS}/api/token/refresh/", json={"refresh": PAT}).json()["access"]
        ls.headers["Authorization"] = f"Bearer {access}"
        tasks_now = ls.get("/api/tasks", params={"project": project, "page_size": 1000, "fields": "all"}).json()["tasks"]
        versions = [[p["model_version"] for p in t.get("predictions", [])] for t in tasks_now]
        with_text = [v for t, v in zip(tasks_now, versions) if t["data"]["text"]]
        newest = {x for v in with_text for x in v if x.startswith(f"p{project}-v")}
        if newest and all(len([x for x in v if x in newest]) == 1 for v in with_text):
            print(f"after {time.time() - t0:.1f} s: every one of {len(with_text)} tasks with text holds exactly one prediction of {sorted(newest)}")
            print("task without text predictions:", [v for t, v in zip(tasks_now, versions) if not t["data"]["text"]])
            break
    else:
        print("NOT DONE:", sum(1 for v in with_text if v), "of", len(with_text), "tasks have predictions")
    jobs = httpx.get(f"http://127.0.0.1:{PORT}/projects/{project}/jobs").json()
    print("job:", json.dumps({k: jobs["jobs"][0].get(k) for k in ("state", "version", "reason")}), "run:", json.dumps(jobs["jobs"][0]["report"].get("prediction_run")), "source:", jobs["jobs"][0]["report"].get("source"))
    run = jobs["jobs"][0]["report"].get("prediction_run") or {}
    if run.get("status_url"):
        print("run status:", httpx.get(f"http://127.0.0.1:{PORT}{run['status_url']}").json())
    print("ml backend model_version in LS:", ls.get(f"/api/ml/{ml_id}").json().get("model_version"))
finally:
    server.terminate(); server.wait(10)
