"""The compiled training pipeline's graph is the intended one (pipelines/tests checks it is current)."""

from pipelines.compile import checked_in


def test_graph_order_and_registration_gates() -> None:
    spec = checked_in("training")
    tasks = spec["root"]["dag"]["tasks"]
    assert tasks["training-set-handoff"]["dependentTasks"] == ["build-training-set"]
    assert tasks["train-ddp"]["dependentTasks"] == ["training-set-handoff"]
    assert sorted(tasks["evaluate"]["dependentTasks"]) == ["train-ddp", "training-set-handoff"]
    # register_model sits under four nested conditions: requested, threshold, baseline, champion.
    conditions = []
    component = spec["components"][tasks["condition-1"]["componentRef"]["name"]]
    conditions.append(tasks["condition-1"]["triggerPolicy"]["condition"])
    while "register-model" not in component["dag"]["tasks"]:
        ((name, task),) = component["dag"]["tasks"].items()
        conditions.append(task["triggerPolicy"]["condition"])
        component = spec["components"][task["componentRef"]["name"]]
    assert "register" in conditions[0]
    assert "passes_threshold" in conditions[1] and "== true" in conditions[1]
    assert "beats_baseline" in conditions[2] and "== true" in conditions[2]
    assert "beats_champion" in conditions[3] and "== true" in conditions[3]
    # evaluate scores the registered model's champion; registration tags its figures.
    evaluate_inputs = tasks["evaluate"]["inputs"]["parameters"]
    assert evaluate_inputs["champion_model"]["componentInputParameter"] == "model_name"
    register_inputs = component["dag"]["tasks"]["register-model"]["inputs"]["parameters"]
    evaluation = register_inputs["evaluation_json"]["componentInputParameter"]
    assert evaluation == "pipelinechannel--evaluate-metrics_json"  # evaluate's report
    assert register_inputs["kfp_run_id"]["runtimeValue"]["constant"] == "{{$.pipeline_job_uuid}}"


def test_train_ddp_gets_what_a_multi_node_trainjob_needs() -> None:
    """train_ddp refuses nodes > 1 without shared_dir and trainjob_image: the pipeline takes them
    (and the TrainJob's namespace) as inputs and hands them to the step."""
    spec = checked_in("training")
    pipeline_inputs = spec["root"]["inputDefinitions"]["parameters"]
    train_inputs = spec["root"]["dag"]["tasks"]["train-ddp"]["inputs"]["parameters"]
    for pipeline_input, step_input in (
        ("nodes", "nodes"),
        ("shared_dir", "shared_dir"),
        ("trainjob_image", "trainjob_image"),
        ("trainjob_namespace", "namespace"),
    ):
        assert pipeline_input in pipeline_inputs
        assert train_inputs[step_input]["componentInputParameter"] == pipeline_input
