"""Benchmark build and evaluation end to end: TWNM round trip, determinism, leak refusal, `hf-spatial evaluate`
on a tiny saved model (with controls and circular), the intensity baseline, a stock Qwen2-Audio through the mono
adapter, and SELD evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hf_spatial.acoustics.scene import SceneSpec
from hf_spatial.evaluation.benchmark import build_benchmark
from hf_spatial.evaluation.items import load_benchmark
from hf_spatial.tasks.twnm import read_twnm_benchmark
from tests.conftest import run_cli
from tests.scene_factory import make_scene

NUM_ITEMS = 20


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench") / "asa"
    run_cli("benchmark", "build", "--out", str(out), "--seed", "3", "--num-items", str(NUM_ITEMS), "--duration", "2")
    return out


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from hf_spatial.acoustics import procedural
    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio

    path = tmp_path_factory.mktemp("model") / "tiny"
    model, processor = build_tiny_spatial_qwen_audio(seed=0, class_names=list(procedural.SYNTHESISERS))
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def test_benchmark_layouts_round_trip(bench):
    report = json.loads((bench / "generation_report.json").read_text())
    assert report["num_items"] == NUM_ITEMS and report["levels"] == {"1": 8, "2": 5, "3": 7}
    assert report["splits"] == ["test"] and all(check["clean"] for check in report["leak_checks"])
    assert "Leak checks" in (bench / "generation_report.md").read_text()
    from_parquet = load_benchmark(bench)
    from_twnm = load_benchmark(bench / "twnm")
    assert len(from_parquet.items) == len(from_twnm.items) == NUM_ITEMS
    keys = ("sample_id", "question", "option_a", "option_d", "answer_letter", "level", "task", "params", "scene")
    for a, b in zip(from_parquet.items, from_twnm.items, strict=True):
        assert {k: a[k] for k in keys} == {k: b[k] for k in keys}
        assert SceneSpec.from_json(a["scene"]).split == "test"
        np.testing.assert_array_equal(from_parquet.audio(a), from_twnm.audio(b))
    assert from_parquet.audio(from_parquet.items[0]).shape == (4, 48000)
    twnm = read_twnm_benchmark(bench / "twnm")
    assert {row["file_name"] for row in twnm} == {f"audio/{row['scene_id']}.flac" for row in twnm}


def test_benchmark_is_deterministic_and_refuses_leaks(bench, tmp_path):
    again = tmp_path / "again"
    build_benchmark(again, num_items=NUM_ITEMS, seed=3, duration=2.0)
    assert (again / "twnm" / "metadata.jsonl").read_bytes() == (bench / "twnm" / "metadata.jsonl").read_bytes()
    assert (again / "data" / "test-00000-of-00001.parquet").read_bytes() == (
        bench / "data" / "test-00000-of-00001.parquet"
    ).read_bytes()
    # A "training" dataset holding one of the benchmark's scenes (shared clip, room and scene).
    leaky = tmp_path / "leaky"
    (leaky / "data").mkdir(parents=True)
    scene_json = load_benchmark(bench).items[0]["scene"]
    pq.write_table(pa.table({"scene": [scene_json]}), leaky / "data" / "train-00000-of-00001.parquet")
    with pytest.raises(ValueError, match="LEAK"):
        build_benchmark(tmp_path / "refused", num_items=NUM_ITEMS, seed=3, duration=2.0, train_datasets=[leaky])
    rejected = json.loads((tmp_path / "refused.rejected" / "generation_report.json").read_text())
    assert not rejected["leak_checks"][1]["clean"] and rejected["leak_checks"][1]["shared_rooms"]
    assert not (tmp_path / "refused").exists()


def test_benchmark_of_chosen_tasks_and_same_named_benchmarks_load_their_own_rows(tmp_path):
    tasks = ["l1_direction_sector", "l2_relative_direction_between_objects"]
    for run, num_items in (("one", 8), ("two", 4)):  # datasets keys its cache of a local folder on the card
        out = tmp_path / run / "bench"
        run_cli("benchmark", "build", "--out", str(out), "--num-items", str(num_items), "--duration", "1",
                "--tasks", *tasks)  # fmt: skip
        items = load_benchmark(out).items
        assert len(items) == num_items and {item["task"] for item in items} == set(tasks)
    report = json.loads((out / "generation_report.json").read_text())
    assert report["args"]["tasks"] == tasks and report["tasks_missing"] == []
    assert "--tasks l1_direction_sector" in report["command"]


def test_evaluate_cli_tiny_model_with_controls_and_circular(bench, tiny_model, tmp_path):
    out = tmp_path / "eval"
    result = run_cli("evaluate", "--model", str(tiny_model), "--benchmark", str(bench), "--controls", "--circular",
                     "--max-items", "4", "--batch-size", "4", "--max-new-tokens", "2", "--out", str(out))  # fmt: skip
    assert "spatial_zeroed" in result.stdout
    results = json.loads((out / "eval_results.json").read_text())
    assert set(results["conditions"]) == {"full", "no_audio", "mono", "spatial_zeroed", "rotated", "circular"}
    assert results["conditions"]["full"]["overall"]["n"] == 4
    assert results["conditions"]["circular"]["overall"]["chance"] == pytest.approx(1 / 256)
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert {p["condition"] for p in predictions} >= {"full", "no_audio", "mono", "spatial_zeroed", "rotated", "cascade"}
    assert (out / "report.md").is_file() and (out / "accuracy_levels.png").is_file()
    # The spatial encoder's own metrics and the cascade baseline on the same items.
    assert results["cascade"]["overall"]["n"] == 4 and results["cascade"]["model"].startswith("cascade(")
    encoder = results["encoder"]
    assert encoder["seld_2024"]["official_clip_length"] and 0 <= encoder["seld_2024"]["f_score"] <= 1
    assert set(encoder["direction_error"]) <= {"1", "2", "3"} and encoder["num_scenes"] >= 1
    row = next(iter(encoder["direction_error"].values()))
    assert set(row) == {"encoder", "intensity"} and 0 <= row["intensity"]["mean_deg"] <= 180
    assert (out / "encoder" / "seld_metrics_2024.md").is_file()
    report = (out / "report.md").read_text()
    assert "## Cascade baseline" in report and "## Spatial encoder" in report
    # Source binding for the conditions that present each item's own scene (None where no item counts).
    assert set(results["source_binding"]) == {"full", "no_audio", "mono", "spatial_zeroed"}
    assert "## Source binding" in report


def _outputs(folder: Path) -> dict[str, bytes]:
    """Every file an evaluation wrote, by relative path, without its stored parts (the output folder, which reports
    name, written as OUT)."""
    return {
        str(path.relative_to(folder)): path.read_bytes().replace(str(folder).encode(), b"OUT")
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).parts[0] != "parts"
    }


def test_sharded_evaluation_merges_to_the_outputs_of_one_run(bench, tiny_model, tmp_path):
    args = ["evaluate", "--model", str(tiny_model), "--benchmark", str(bench), "--controls",
            "--max-items", "6", "--batch-size", "4", "--max-new-tokens", "2"]  # fmt: skip
    run_cli(*args, "--out", str(tmp_path / "one"))
    sharded = tmp_path / "sharded"
    # part 1 of 3 as its own job (batches of 4 cut at other items than in one run); the merging run scores 0 and 2
    job = run_cli(*args, "--out", str(sharded), "--num-shards", "3", "--shard-index", "1")
    assert "evaluated part 1 of 3" in job.stdout
    assert [path.name for path in (sharded / "parts").iterdir()] == ["part-00001-of-00003.json"]
    assert not (sharded / "predictions.jsonl").exists()
    run_cli(*args, "--out", str(sharded), "--num-shards", "3")
    assert _outputs(sharded) == _outputs(tmp_path / "one")
    assert "predictions.jsonl" in _outputs(sharded) and "eval_results.json" in _outputs(sharded)
    # A part scored with other settings is refused, not merged.
    changed = run_cli(*args[:-1], "4", "--out", str(sharded), "--num-shards", "3", check=False)  # max-new-tokens 4
    assert changed.returncode == 2 and "evaluated with other settings" in changed.stderr
    assert "'max_new_tokens': (2, 4)" in changed.stderr


def test_model_predictor_prompts_and_spatial_switch(bench, tiny_model):
    from hf_spatial.evaluation.controls import prepare
    from hf_spatial.evaluation.predictors import ModelPredictor

    predictor = ModelPredictor(tiny_model, max_new_tokens=2)
    benchmark = load_benchmark(bench, max_items=2)
    calls = []
    original = predictor.model.set_audio_branches
    predictor.model.set_audio_branches = lambda **kw: (calls.append(kw), original(**kw))
    for condition in ("no_audio", "spatial_zeroed"):
        requests = [prepare(condition, it, benchmark.audio(it), benchmark.scene(it)) for it in benchmark.items]
        assert len(predictor.predict(requests)) == 2
    assert calls == [{"spatial": False}, {"spatial": True}] and not predictor.model.config.zero_spatial_branch
    from hf_spatial.evaluation.predictors import user_messages

    text = predictor.processor.apply_chat_template([user_messages("Q?", False)], add_generation_prompt=True,
                                                   tokenize=False)[0]  # fmt: skip
    assert "<|AUDIO|>" not in text and "Q?" in text


def test_evaluate_cli_scores_by_option_likelihood(bench, tiny_model, tmp_path):
    out = tmp_path / "eval"
    run_cli("evaluate", "--model", str(tiny_model), "--benchmark", str(bench), "--max-items", "6", "--out", str(out),
            "--scoring", "likelihood", "--answer-format", "text", "--batch-size", "4")  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())
    assert results["model"] == "tiny (text answers, most likely option)"
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 6 and all(p["predicted_letter"] == p["response"] for p in predictions)


def test_evaluate_cli_scores_the_training_split_of_a_question_dataset(questions_dir, tiny_model, tmp_path):
    from datasets import load_dataset

    out = tmp_path / "train_eval"
    run_cli("evaluate", "--model", str(tiny_model), "--benchmark", str(questions_dir), "--split", "train",
            "--max-items", "5", "--out", str(out), "--batch-size", "5")  # fmt: skip
    results = json.loads((out / "eval_results.json").read_text())
    assert results["benchmark"]["split"] == "train" and results["conditions"]["full"]["overall"]["n"] == 5
    training = load_dataset(str(questions_dir), split="train")
    predictions = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert [p["sample_id"] for p in predictions] == training["sample_id"][:5]
    failed = run_cli("evaluate", "--model", str(tiny_model), "--benchmark", str(questions_dir), "--split", "dev",
                     "--out", str(tmp_path / "none"), check=False)  # fmt: skip
    assert failed.returncode == 2 and "has no split 'dev'" in failed.stderr


@pytest.mark.parametrize("answer_format", ["letter", "text"])
def test_likelihood_scoring_equals_one_conversation_at_a_time(bench, tiny_model, answer_format):
    """Batched option scoring (padding, audio tokens, several options per item) gives each option the
    log-probability of its completion tokens computed alone, and answers with the most likely option."""
    import torch

    from hf_spatial.evaluation.controls import prepare
    from hf_spatial.evaluation.predictors import ModelPredictor, user_messages
    from hf_spatial.tasks.parsing import option_texts, parse_answer
    from hf_spatial.tasks.prompting import answer_completion

    predictor = ModelPredictor(tiny_model, answer_format=answer_format, scoring="likelihood")
    benchmark = load_benchmark(bench, max_items=3)
    for condition in ("full", "no_audio"):
        requests = [prepare(condition, it, benchmark.audio(it), benchmark.scene(it)) for it in benchmark.items]
        scores = predictor.option_log_likelihoods(requests)
        answers = predictor.predict(requests)
        for request, item_scores, answer in zip(requests, scores, answers, strict=True):
            assert list(item_scores) == list(option_texts(request.item))
            assert answer == max(item_scores, key=item_scores.get) and parse_answer(answer, request.item) == answer
            audio = {} if request.audio is None else {"audio": [request.audio], "sampling_rate": 24000}
            prompt = user_messages(predictor.prompt_text(request), request.audio is not None)
            prompt_text = predictor.processor.apply_chat_template([prompt], add_generation_prompt=True, tokenize=False)
            prompt_length = predictor.processor(text=prompt_text, **audio, return_tensors="pt")["input_ids"].shape[1]
            for letter, score in item_scores.items():
                answer_turn = [{"role": "assistant", "content": answer_completion(request.item, letter, answer_format)}]
                text = predictor.processor.apply_chat_template([prompt + answer_turn], tokenize=False)
                inputs = predictor.processor(text=text, **audio, return_tensors="pt")
                with torch.inference_mode():
                    log_probs = predictor.model(**inputs).logits[0, :-1].log_softmax(-1)
                targets = inputs["input_ids"][0, 1:]
                alone = log_probs.gather(-1, targets[:, None])[prompt_length - 1 :].sum()
                assert score == pytest.approx(float(alone), abs=1e-3)


def test_stock_qwen2_audio_through_the_mono_adapter(bench, tmp_path):
    import torch
    from transformers import Qwen2AudioConfig, Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor
    from transformers.models.whisper import WhisperFeatureExtractor

    from hf_spatial.evaluation.predictors import ModelPredictor
    from hf_spatial.evaluation.runner import evaluate
    from hf_spatial.models.tiny import build_tiny_tokenizer, tiny_qwen2_audio_config_dict

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    model = Qwen2AudioForConditionalGeneration(Qwen2AudioConfig(**tiny_qwen2_audio_config_dict(tokenizer))).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    path = tmp_path / "qwen2-audio"
    model.save_pretrained(path)
    Qwen2AudioProcessor(WhisperFeatureExtractor(feature_size=128), tokenizer).save_pretrained(path)
    predictor = ModelPredictor(path, max_new_tokens=2)
    assert not predictor.spatial and predictor.conditions == ("full", "no_audio", "rotated")
    run = evaluate(predictor, load_benchmark(bench, max_items=3), ("full", "mono", "rotated"), batch_size=2)
    assert set(run.records) == {"full", "rotated"} and len(run.records["full"]) == 3


@pytest.fixture(scope="module")
def anechoic(tmp_path_factory):
    """Eight anechoic 2-s scenes of procedural sounds (one source, or two at least 60 degrees apart: two
    simultaneous sources closer than that are beyond active intensity) and all their questions."""
    from hf_spatial.acoustics.render import render_scene
    from hf_spatial.acoustics.sources import SourceBank
    from hf_spatial.data.schema import encode_flac
    from hf_spatial.evaluation.items import Benchmark
    from hf_spatial.tasks import generate_questions

    folder = tmp_path_factory.mktemp("anechoic")
    bank = SourceBank.procedural(seed=0)
    clips = {clip.label: clip for clip in bank.split("test").clips}
    rng = np.random.default_rng(0)
    items = []
    for k in range(8):
        labels = ["speech", "telephone"] if k % 2 else ["alarm"]
        azimuths = rng.choice(np.arange(-170, 180, 60), size=len(labels), replace=False) + 5.0
        scene = make_scene([(label, float(az), 0.0, 1.5, 0.0) for label, az in zip(labels, azimuths, strict=True)],
                           scene_id=f"anechoic{k}", room=(8.0, 8.0, 4.0))  # fmt: skip
        for source in scene.sources:
            source.clip_id, source.offset, source.onset = clips[source.label].clip_id, 2.0, 0.0
        scene.duration = 2.0
        path = folder / f"{scene.scene_id}.flac"
        path.write_bytes(encode_flac(render_scene(scene, bank, anechoic=True)))
        items += [{**it, "scene": scene.to_json(), "audio_path": str(path)} for it in generate_questions(scene, k)]
    return Benchmark("anechoic", items)


def test_intensity_baseline_near_perfect_on_anechoic_scenes(anechoic):
    from hf_spatial.evaluation.baselines import IntensityBaseline
    from hf_spatial.evaluation.runner import evaluate

    run = evaluate(IntensityBaseline(oracle_identity=True), anechoic, ("full", "rotated"))
    assert run.predictor == "intensity + true source identity (oracle)"
    full = run.records["full"]
    assert {r["task"] for r in full} >= {"l1_direction_sector", "l1_azimuth", "l3_navigation"}
    assert "l1_count_sources" not in {r["task"] for r in full}  # not applicable: excluded and reported
    assert run.excluded["full"]["task not applicable to this predictor"] > 0
    assert np.mean([r["correct"] for r in full]) >= 0.9
    assert np.mean([r["correct"] for r in run.records["rotated"]]) >= 0.9
    # Without ground truth: the single-source scenes' items only (no identity to know), as accurate there.
    fair = evaluate(IntensityBaseline(), anechoic, ("full",))
    single = {item["sample_id"] for item in anechoic.items if len(SceneSpec.from_json(item["scene"]).sources) == 1}
    assert {r["sample_id"] for r in fair.records["full"]} == single & {r["sample_id"] for r in full}
    assert np.mean([r["correct"] for r in fair.records["full"]]) >= 0.9


def test_source_binding_tells_the_named_sound_from_another_heard_one(anechoic, tmp_path):
    """`source_binding` on the oracle intensity baseline (told which estimate is which sound): its answers are the
    named sounds', in the evaluation's outputs too; on answers given for another sound of the scene (a listener that
    ignores the name): never."""
    from hf_spatial.evaluation.baselines import IntensityBaseline
    from hf_spatial.evaluation.binding import answers_per_source, source_binding
    from hf_spatial.evaluation.report import write_outputs
    from hf_spatial.evaluation.runner import evaluate

    run = evaluate(IntensityBaseline(oracle_identity=True), anechoic, ("full", "rotated"))
    oracle = run.records["full"]
    binding = source_binding(oracle, anechoic.items)
    assert binding["items"] >= 4 and binding["named"]["share"] >= 0.9 and binding["another_source"]["share"] <= 0.1
    assert binding["name_blind"] == pytest.approx(0.5)  # two sounds in every scene counted, in different sectors
    results = write_outputs(run, tmp_path, plots=False, items=anechoic.items)
    assert json.loads((tmp_path / "eval_results.json").read_text())["source_binding"] == {"full": binding}
    assert results["source_binding"] == {"full": binding}  # not for rotated: its gold is another scene's
    report = (tmp_path / "report.md").read_text()
    named = binding["named"]
    assert f"| the named sound | {100 * named['share']:.1f} (" in report and f"n={named['n']} |" in report

    answers = {item["sample_id"]: answers_per_source(item) for item in anechoic.items}
    counted, other_sound = [], []  # the items where the scene's other sound has another answer, answered for it
    for record in oracle:
        if answers[record["sample_id"]] is not None:
            index, letters = answers[record["sample_id"]]
            if None not in letters and letters[0] != letters[1]:
                counted.append(record)
                other_sound.append({**record, "predicted_letter": letters[1 - index]})
    blind = source_binding(other_sound, anechoic.items)
    assert blind["items"] == len(counted) >= 4
    assert blind["named"]["share"] == 0 and blind["another_source"]["share"] == 1
    assert source_binding([r for r in oracle if answers[r["sample_id"]] is None], anechoic.items) is None


def test_encoder_readout_answers_from_the_shipped_encoder_without_ground_truth(anechoic, tmp_path):
    """The encoder readout (`hf-spatial evaluate --baseline encoder-readout`) on a model around the shipped spatial
    encoder: right on the anechoic scenes' direction questions, at chance with W only, and blind to the true
    directions and distances in the scene metadata (its answers do not change when they are scrambled)."""
    from hf_spatial.evaluation.controls import Request
    from hf_spatial.evaluation.readout import READOUT_NAME, READOUT_TASKS, EncoderReadout
    from hf_spatial.evaluation.runner import evaluate
    from hf_spatial.models.spatial_encoders import SHIPPED_SPATIAL_ENCODER
    from hf_spatial.models.tiny import build_tiny_spatial_qwen_audio

    model, processor = build_tiny_spatial_qwen_audio(spatial_encoder_name_or_path=SHIPPED_SPATIAL_ENCODER,
                                                     window_seconds=2)  # fmt: skip
    model.save_pretrained(tmp_path / "model")
    processor.save_pretrained(tmp_path / "model")
    readout = EncoderReadout(tmp_path / "model")
    run = evaluate(readout, anechoic, ("full", "mono"))
    assert run.predictor == READOUT_NAME
    full = run.records["full"]
    assert {"l1_direction_sector", "l1_azimuth"} <= {r["task"] for r in full} <= set(READOUT_TASKS)
    assert run.excluded["full"]["task not applicable to this predictor"] > 0  # e.g. navigation reads every source
    accuracy = np.mean([r["correct"] for r in full])
    # 27 of 34 on an AVX-512 Xeon, at least 28 on earlier machines: an item near a sector boundary flips with the
    # CPU's rounding.
    assert accuracy >= 0.75 and np.mean([r["correct"] for r in run.records["mono"]]) <= accuracy - 0.3

    rng = np.random.default_rng(1)
    answers, tasks = [], []
    for item in filter(readout.applies_to, anechoic.items):
        scene, scrambled = SceneSpec.from_json(item["scene"]), SceneSpec.from_json(item["scene"])
        for source in scrambled.sources:
            source.azimuth, source.elevation = float(rng.uniform(-180, 180)), float(rng.uniform(-60, 60))
            source.distance = float(rng.uniform(0.5, 5.0))
        audio = anechoic.audio(item)
        answers.append([readout.predict([Request(item, audio, s, "full")])[0] for s in (scene, scrambled)])
        tasks.append(item["task"])
    assert "l2_relative_direction_between_objects" in tasks  # where A is relative to B: directions and distances
    assert all(true == scrambled for true, scrambled in answers)


def test_seld_cli_on_csv_folders(tmp_path):
    ref, pred = tmp_path / "ref", tmp_path / "pred"
    for folder in (ref, pred):
        folder.mkdir()
    # References in cm (STARSS23), predictions in m; the official scorer does not score the last frame (2).
    (ref / "clip.csv").write_text("0,1,0,30,0,150\n1,1,0,30,0,150\n2,2,0,-90,10,200\n")
    (pred / "clip.csv").write_text("0,1,0,30,0,1.5\n1,1,0,30,0,1.5\n2,2,0,-90,10,2.0\n")
    result = run_cli(
        "evaluate", "--seld", "--ref", str(ref), "--pred", str(pred), "--edition", "2024", "--num-classes", "3"
    )
    for metric in ("f_score 0.333", "relative_distance_error 0.000", "error_rate 0.000"):  # F: 1 of 3 classes
        assert metric in result.stdout
    saved = json.loads((pred / "seld_metrics_2024.json").read_text())
    assert saved["metrics"]["num_references"] == 2
    failed = run_cli("evaluate", "--seld", "--ref", str(ref), check=False)
    assert failed.returncode == 2 and "needs both --ref DIR and --pred DIR" in failed.stderr


def test_seld_on_a_model_and_simulated_split(tiny_model, tmp_path):
    from hf_spatial.data.simulate import simulate
    from hf_spatial.seld.evaluate import evaluate_model_seld
    from hf_spatial.seld.labels import reference_labels

    scene = make_scene([("alarm", 30.0, 0.0, 1.5, 0.25)])
    scene.sources[0].offset = 0.75
    assert sorted(reference_labels(scene, ["alarm"])) == [2, 3, 4, 5, 6]
    dataset = simulate(tmp_path / "sim", num_scenes=2, seed=0, split="test", duration=2.0, progress=False)
    results = evaluate_model_seld(tiny_model, dataset, tmp_path / "seld", edition=2024)
    assert sorted(p.name for p in (tmp_path / "seld" / "ref").iterdir()) == sorted(
        p.name for p in (tmp_path / "seld" / "pred").iterdir()
    )
    assert len(results["files"]) == 2 and Path(results["report_path"]).is_file()
