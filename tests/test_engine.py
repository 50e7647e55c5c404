"""The engine with a task that is neither classification nor detection: a toy regression
(y = 2x + 1, one Linear layer) trained by ``fit`` on the CPU in a couple of seconds. It learns,
resumes bit-exactly after a kill, stops with exit status 3 when the loss diverges, and calls a
hook passed to ``fit`` exactly as often as documented."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn as nn
from safetensors.torch import load_file

from googlenet.engine.checkpoint import load_resume
from googlenet.engine.hooks import EXIT_DIVERGED, HookBase, TrainingDiverged
from googlenet.engine.rundir import RunDir
from googlenet.engine.task import Metric, StepResult, TaskData
from googlenet.engine.trainer import fit
from googlenet.tasks import resolve_config
from googlenet.weights import records
from googlenet.weights.records import WeightsMeta

EPOCHS, STEPS = 4, 10  # 320 points in batches of 32


class Line(nn.Linear):
    def __init__(self) -> None:
        super().__init__(1, 1)
        self.config = {"num_classes": 1}  # what a weights file says a model is


class ToyTask:
    """y = 2x + 1 on 320 random points; ``nan_at``: the step whose loss is NaN."""

    name, best_metric = "toy", "val_score"
    count_key, count_unit = "points", "pt"
    metrics = (Metric("train_loss", "loss", group="loss"),
               Metric("val_mse", "val mse", fmt=".5f", group="loss"))

    def __init__(self, nan_at: int = 0) -> None:
        self.nan_at, self.steps = nan_at, 0

    def setup_data(self, cfg, dist) -> TaskData:
        x = torch.rand(400, 1, generator=torch.Generator().manual_seed(1)) * 2 - 1
        ds = torch.utils.data.TensorDataset(x, 2 * x + 1)
        train, val = torch.utils.data.random_split(ds, [320, 80], torch.Generator().manual_seed(2))
        return TaskData(train=train, val=val, test=None, meta=WeightsMeta(model_config={}),
                        description="toy: y = 2x + 1", in_memory=True)

    def build_model(self, cfg, data) -> nn.Module:
        return Line()

    def train_step(self, model, batch, cfg, device) -> StepResult:
        self.steps += 1
        x, y = batch
        loss = nn.functional.mse_loss(model(x), y) * (float("nan") if self.steps == self.nan_at else 1)
        n = torch.tensor(float(len(x)))
        return StepResult(loss=loss, sums={"loss": loss.detach() * n, "points": n})

    def epoch_metrics(self, sums, model) -> dict[str, float]:
        return {"train_loss": sums["loss"] / sums["points"]}

    @torch.no_grad()
    def evaluate(self, model, loader, device, cfg) -> dict[str, float]:
        se = sum(float(((model(x) - y) ** 2).sum()) for x, y in loader)
        mse = se / len(loader.dataset)
        return {"mse": mse, "score": -mse}

    def check_compatible(self, *a: Any) -> None: ...


@pytest.fixture(autouse=True)
def _toy_is_a_task(monkeypatch):
    """Checkpoints name their task, and reading one checks the name against the known tasks."""
    monkeypatch.setattr(records, "TASKS", (*records.TASKS, ToyTask.name))


def _cfg(out, **kw):
    o = dict(out=str(out), epochs=EPOCHS, batch_size=32, lr=0.3, optimizer="adamw",
             weight_decay=0.0, warmup_epochs=0, average="ema", average_start_epoch=1, progress=False, tensorboard=False,
             plots=False, workers=0, device="cpu")
    return resolve_config(None, {**o, **kw})


class Counter(HookBase):
    """Counts the calls; its count of steps is state that a checkpoint keeps."""

    def __init__(self) -> None:
        self.calls = dict.fromkeys(["before_train", "before_epoch", "after_step", "after_epoch",
                                    "after_train"], 0)

    def _count(self, event: str) -> None:
        self.calls[event] += 1

    def before_train(self) -> None: self._count("before_train")
    def before_epoch(self) -> None: self._count("before_epoch")
    def after_step(self) -> None: self._count("after_step")
    def after_epoch(self) -> None: self._count("after_epoch")
    def after_train(self) -> None: self._count("after_train")

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.calls["after_step"]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.calls["after_step"] = state.get("steps", 0)


class Kill(HookBase):
    """Stops the process as a Ctrl-C would, after step ``at``."""

    def __init__(self, at: int) -> None:
        self.at = at

    def after_step(self) -> None:
        if self.trainer.state.step == self.at:
            raise KeyboardInterrupt


def test_toy_task_learns_and_the_hook_sees_every_call(tmp_path):
    task, count = ToyTask(), Counter()
    cfg = _cfg(tmp_path / "run")
    torch.manual_seed(cfg.system.seed)  # the engine's initial weights
    mse0 = task.evaluate(Line(), torch.utils.data.DataLoader(task.setup_data(cfg, None).val), None, cfg)["mse"]
    res = fit(task, cfg, hooks=[count])
    assert res["val_mse"] < mse0 / 10
    assert count.calls == {"before_train": 1, "before_epoch": EPOCHS, "after_step": EPOCHS * STEPS,
                           "after_epoch": EPOCHS, "after_train": 1}
    run = RunDir(tmp_path / "run")
    assert all(p.is_file() for p in (run.results, run.config, run.metrics, run.final_weights))
    log = run.train_log.read_text()
    assert "epoch   4/4  loss " in log and "val mse " in log and " pt/s  " in log
    assert "final val (weights): val mse " in log or "final val (averaged weights): val mse " in log


@pytest.mark.parametrize("kill_at", [2 * STEPS, 14])  # at an epoch's end; inside one
def test_resumed_after_a_kill_bit_exactly(tmp_path, kill_at):
    fit(ToyTask(), _cfg(tmp_path / "straight"))
    cut = tmp_path / "cut"
    with pytest.raises(KeyboardInterrupt):
        fit(ToyTask(), _cfg(cut, checkpoint_every=3), hooks=[Counter(), Kill(kill_at)])
    assert not RunDir(cut).results.exists()
    run, ckpt = load_resume(cut)
    assert 0 < ckpt.run_state["step"] <= kill_at
    count = Counter()
    fit(ToyTask(), _cfg(cut, checkpoint_every=3), resume=ckpt, resume_dir=run, hooks=[count])
    assert count.calls["after_step"] == EPOCHS * STEPS  # the hook's state came back too
    a, b = load_file(tmp_path / "straight" / RunDir.FINAL_WEIGHTS), load_file(cut / RunDir.FINAL_WEIGHTS)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)



def test_a_checkpoint_written_before_hooks_had_state_resumes(tmp_path):
    """Checkpoints without the ``hooks`` entry (earlier versions) still resume exactly."""
    fit(ToyTask(), _cfg(tmp_path / "straight"))
    cut = RunDir(tmp_path / "cut")
    with pytest.raises(KeyboardInterrupt):
        fit(ToyTask(), _cfg(cut.path, checkpoint_every=3), hooks=[Counter(), Kill(14)])
    state = torch.load(cut.checkpoint_last, weights_only=True)
    assert state.pop("hooks") == {"Counter": {"steps": 12}}
    torch.save(state, cut.checkpoint_last)
    run, ckpt = load_resume(cut.path)
    assert ckpt.hooks == {}
    fit(ToyTask(), _cfg(cut.path, checkpoint_every=3), resume=ckpt, resume_dir=run)
    a, b = load_file(tmp_path / "straight" / RunDir.FINAL_WEIGHTS), load_file(cut.final_weights)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_run_dir_names_its_files(tmp_path):
    run = RunDir(tmp_path)
    assert run.results == tmp_path / "results.json" and run.config == tmp_path / "config.toml"
    assert run.checkpoint_last == tmp_path / "checkpoint-last.pt" and str(run) == str(tmp_path)
    assert set(RunDir.FILES) >= {"metrics.csv", "curves.png", "model.safetensors"}
    lock = run.lock().acquire()
    try:
        assert (tmp_path / ".lock").read_text().strip().isdigit()
    finally:
        lock.release()

def test_nan_loss_stops_with_exit_status_3(tmp_path):
    with pytest.raises(TrainingDiverged, match=r"nan at step 5 .*\(step 3\) is intact") as e:
        fit(ToyTask(nan_at=5), _cfg(tmp_path / "run", checkpoint_every=3))
    assert e.value.exit_code == EXIT_DIVERGED == 3
    assert load_resume(tmp_path / "run")[1].run_state["step"] == 3


def test_the_lines_of_classification_and_detection_from_their_declarations():
    from googlenet.engine.report import epoch_line, final_line
    from googlenet.tasks.classify.task import ClassificationTask
    from googlenet.tasks.detect.task import DetectionTask
    from googlenet.tasks.rcnn.task import RCNNTask

    epochs = resolve_config(None, {"epochs": 8}).run.epochs
    row = {"epoch": 3, "step": 117, "lr": 0.0015, "images_per_s": 26.4, "epoch_seconds": 50.52,
           "train_loss": 0.4945, "train_main_loss": 0.3206, "train_aux1_loss": 0.245,
           "train_aux2_loss": 0.334, "val_top1": 90.56, "val_top5": 99.44}
    c = ClassificationTask()
    assert epoch_line(c, {**row, "val_top1_raw": 88.1}, epochs) == (
        "epoch   3/8  loss 0.4945 (main 0.3206, aux 0.245/0.334)  val top-1 90.56% top-5 99.44% "
        "(raw weights 88.10%)  lr 0.0015  26 img/s  50.5s")
    assert epoch_line(c, {**row, "train_aux1_loss": float("nan"), "train_aux2_loss": float("nan")},
                      epochs) == "epoch   3/8  loss 0.4945  val top-1 90.56% top-5 99.44%  lr 0.0015  26 img/s  50.5s"
    assert final_line(c, "val", {"top1": 90.0, "top5": 99.0, "images": 180}, True) == (
        "final val accuracy (averaged weights, 180 images): top-1 90.00%  top-5 99.00%")
    d = RCNNTask()
    assert epoch_line(d, {**row, "train_loss_cls": 1.2, "val_map": 30.0, "val_map50": 50.0,
                          "val_proposals_per_image": 812.4, "val_proposal_recall50": 91.23}, epochs) == (
        "epoch   3/8  loss 0.4945 (cls 1.200)  val mAP 30.00% AP50 50.00%  proposals 812/image, "
        "recall@.5 91.2%  lr 0.0015  26.4 img/s  50.5s")
    f = DetectionTask()
    f.arch = "fcos"
    assert epoch_line(f, {**row, "train_loss_cls": 0.5, "train_loss_box": 0.3, "train_loss_ctr": 0.6,
                          "val_map": 30.0, "val_map50": 50.0, "val_map_raw": 28.0}, epochs) == (
        "epoch   3/8  loss 0.4945 (cls 0.500, box 0.300, ctr 0.600)  val mAP 30.00% AP50 50.00% "
        "(raw weights mAP 28.00%)  lr 0.0015  26.4 img/s  50.5s")
    assert final_line(d, "test", {"map": 40.0, "map50": 70.0, "map75": 41.0, "images": 50}, False) == (
        "final test detection (weights, 50 images): COCO mAP@[.5:.95] 40.00%  AP50 70.00%  AP75 41.00%")
