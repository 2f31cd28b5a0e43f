"""`mlspec plan --base REF` on real git repositories: a branch's changes in ML terms, touching no state."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from mlspec.cli.main import main
from tests.plan.git_repo import Repo, iris_repo

ROOT = Path(__file__).resolve().parents[2]
PLAN_SCHEMA = json.loads((ROOT / "schema" / "mlspec.plan.schema.json").read_text())
GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Repo:
    made = iris_repo(tmp_path / "repo")
    monkeypatch.chdir(made.root)
    return made


def plan(capsys: pytest.CaptureFixture[str], *args: str, base: str = "main") -> tuple[int, str]:
    capsys.readouterr()
    code = main(["plan", "iris", "--base", base, *args])
    return code, capsys.readouterr().out


def plan_json(capsys: pytest.CaptureFixture[str], base: str = "main") -> dict:
    code, out = plan(capsys, "--format", "json", base=base)
    assert code == 0, out
    document = json.loads(out)
    jsonschema.validate(document, PLAN_SCHEMA)
    return document


def changes(document: dict) -> dict[str, tuple[str, list[str]]]:
    return {c["id"]: (c["verb"] or c["action"], c["reasons"]) for c in document["changes"] if c["action"] != "noop"}


def test_code_edit_and_traffic_shift_in_one_screen_of_markdown(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    """The pull request of the issue: train.py edited and traffic shifted, as the PR comment shows it."""
    repo.append("src/train.py", "# scale features before fitting\n")
    repo.edit("mlspec.yaml", "traffic: {blue: 90, green: 10}", "traffic: {blue: 80, green: 20}")
    repo.commit("scale features; send green more traffic")
    code, markdown = plan(capsys, "--format", "markdown")
    assert code == 0
    base = repo.git("rev-parse", "--short=7", "main")
    assert markdown.replace(f"`{base}`", "`BASE`") == (GOLDEN / "code_and_traffic.md").read_text()
    assert len(markdown.split("<details>")[0].splitlines()) <= 12  # the part shown unfolded: one screen


def test_data_change_retrains_both_jobs_through_the_data(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.append("data/iris.csv", "5.0,3.4,1.5,0.2,0\n")
    found = changes(plan_json(capsys))
    assert found["data/iris"] == ("new version", ["files changed (data/iris.csv)"])
    assert found["job/train"] == ("retrain", ["new version of data/iris (files changed (data/iris.csv))"])
    assert found["job/train-forest"][0] == "retrain"
    assert found["endpoint/iris"] == ("redeploy", ["new version of iris-clf", "new version of iris-forest"])


def test_parameter_change_retrains_only_its_job(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.edit("mlspec.yaml", "C: 1.0", "C: 0.5")
    document = plan_json(capsys)
    found = changes(document)
    assert set(found) == {"job/train", "model/iris-clf", "endpoint/iris"}
    assert found["job/train"] == ("retrain", ["inputs.C: 1.0 → 0.5"])
    assert document["registrations"] == 1
    assert document["traffic"] == []


def test_traffic_alone_shifts_traffic_and_retrains_nothing(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.edit("mlspec.yaml", "traffic: {blue: 90, green: 10}", "traffic: {blue: 0, green: 100}")
    document = plan_json(capsys)
    assert changes(document) == {"endpoint/iris": ("shift traffic", ["traffic blue 90 → 0, green 10 → 100"])}
    assert document["traffic"] == [{"endpoint": "iris", "field": "traffic", "before": {"blue": 90, "green": 10},
                                    "after": {"blue": 0, "green": 100}}]
    _, text = plan(capsys)
    assert "~ endpoint/iris  shift traffic: traffic blue 90 → 0, green 10 → 100" in text


def test_environment_change_rebuilds_and_retrains(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.edit("mlspec.yaml", "  - mlflow-skinny>=2.12\n", "  - mlflow-skinny>=2.12\n  - pandas>=2\n")
    found = changes(plan_json(capsys))
    assert found["environment/sklearn"][0] == "rebuild"
    assert found["job/train"][0] == "retrain"
    assert found["job/train"][1][0].startswith("environment/sklearn rebuilds (requirements")


def test_added_and_removed_resources(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    spec = repo.spec / "mlspec.yaml"
    text = spec.read_text()
    start = text.index("kind: Job\nname: train-forest")
    end = text.index("---", start)
    text = text[:start] + "kind: Data\nname: holdout\npath: data/iris.csv\n" + text[end:]
    text = text.replace("model: iris-forest@latest", "model: iris-clf@latest")
    spec.write_text(text)
    document = plan_json(capsys)
    actions = {c["id"]: c["action"] for c in document["changes"] if c["action"] != "noop"}
    assert actions == {"data/holdout": "create", "endpoint/iris": "update", "model/iris-forest": "delete",
                       "job/train-forest": "delete"}
    # deletes come last, dependants first
    assert [c["id"] for c in document["changes"]][-2:] == ["model/iris-forest", "job/train-forest"]


def test_plans_from_where_the_branch_left_its_base(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    """Work merged to main after the branch started is not shown as undone by the branch (as `git diff main...`)."""
    repo.edit("mlspec.yaml", "C: 1.0", "C: 2.0")
    repo.commit("branch: C 2.0")
    repo.git("checkout", "-q", "main")
    repo.edit("mlspec.yaml", "instance_count: 1\n  green", "instance_count: 3\n  green")
    repo.commit("main: three blue replicas")
    repo.git("checkout", "-q", "change")
    document = plan_json(capsys)
    assert set(changes(document)) == {"job/train", "model/iris-clf", "endpoint/iris"}
    assert document["base"]["merge_base"] is True
    assert document["base"]["commit"] == repo.git("merge-base", "main", "change")


def test_no_change_and_the_detailed_exit_code(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    code, text = plan(capsys, "--detailed-exitcode")
    assert code == 0 and "No changes" in text
    repo.edit("mlspec.yaml", "C: 1.0", "C: 0.5")
    assert plan(capsys, "--detailed-exitcode")[0] == 2
    # An invalid spec is not "changes": 1, as for any other failure.
    repo.edit("mlspec.yaml", "max_nodes: 2", "max_nodes: many")
    assert plan(capsys, "--detailed-exitcode")[0] == 1
    assert plan(capsys)[0] == 2
    assert main(["plan", "iris", "--base", "no-such-branch", "--detailed-exitcode"]) == 1


def test_touches_no_state_and_leaves_the_working_tree_alone(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.append("src/train.py", "# edited, not committed\n")
    status = repo.git("status", "--porcelain")
    assert plan(capsys)[0] == 0
    assert not (repo.spec / ".mlspec").exists()
    assert repo.git("status", "--porcelain") == status
    assert repo.git("stash", "list") == ""


def test_unknown_revision_and_folder_outside_git(repo: Repo, capsys: pytest.CaptureFixture[str],
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["plan", "iris", "--base", "no-such-branch"]) == 2
    assert "'no-such-branch' is not a commit" in capsys.readouterr().err
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "mlspec.yaml").write_text((repo.spec / "mlspec.yaml").read_text())
    for folder in ("src", "data"):
        (loose / folder).symlink_to(repo.spec / folder)
    monkeypatch.chdir(loose)
    assert main(["plan", ".", "--base", "main"]) == 2
    assert "is not in a git repository" in capsys.readouterr().err


def test_a_base_that_does_not_validate_is_named_with_its_line(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.git("checkout", "-q", "main")
    repo.edit("mlspec.yaml", "max_nodes: 2", "max_nodes: many")
    repo.commit("break main")
    repo.git("checkout", "-q", "-b", "fix")
    repo.edit("mlspec.yaml", "max_nodes: many", "max_nodes: 2")
    assert main(["plan", "iris", "--base", "HEAD"]) == 2
    err = capsys.readouterr().err
    assert "does not validate" in err and "iris/mlspec.yaml:13: " in err and "max_nodes" in err


def test_a_spec_that_reads_files_outside_its_folder(repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    """`code: ../shared` is read from the base revision too (the whole tree, since the root alone misses it)."""
    (repo.root / "shared").mkdir()
    (repo.root / "shared" / "train.py").write_text((repo.spec / "src" / "train.py").read_text())
    repo.edit("mlspec.yaml", "code: src/\ncommand: >-", "code: ../shared\ncommand: >-")
    repo.commit("train from shared code")
    repo.append("../shared/train.py", "# tuned\n")
    found = changes(plan_json(capsys, base="HEAD"))
    assert found["job/train"] == ("retrain", ["files changed (../shared/train.py)"])


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_pulumi_targets_list_the_generated_resources_that_change(repo: Repo, capsys: pytest.CaptureFixture[str],
                                                                 target: str) -> None:
    repo.append("src/train.py", "# tuned\n")
    code, out = plan(capsys, "--target", target, "--format", "json")
    assert code == 0
    document = json.loads(out)
    jsonschema.validate(document, PLAN_SCHEMA)
    generated = {(g["type"], g["name"]): (g["action"], g["fields"]) for g in document["generated"]}
    if target == "docker":
        assert generated[("mlspec:docker:TrainingJob", "train")] == ("replace", ["content_hash",
                                                                                 'files["src/train.py"]'])
        assert generated[("mlspec:docker:OnlineEndpoint", "iris")][0] == "update"
    else:
        jobs = [name for (kind, name), (action, _) in generated.items()
                if kind == "kubernetes:batch/v1:Job" and action == "replace"]
        assert len(jobs) == 2
    _, markdown = plan(capsys, "--target", target, "--format", "markdown")
    assert f"<summary>Generated {target} resources (" in markdown
    # The local plan, which compiles nothing, says nothing of generated resources.
    assert plan_json(capsys)["generated"] is None


def test_reads_the_base_on_pythons_without_tar_filters(repo: Repo, capsys: pytest.CaptureFixture[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Python before 3.11.4 (Debian 12's 3.11.2) has no extraction filters: the members are checked by hand."""
    import tarfile

    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    repo.edit("mlspec.yaml", "C: 1.0", "C: 0.5")
    assert changes(plan_json(capsys))["job/train"] == ("retrain", ["inputs.C: 1.0 → 0.5"])
