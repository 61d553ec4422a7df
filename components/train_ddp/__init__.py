"""train_ddp: DDP training of a small tabular classifier under torchrun.

`impl.train` launches torchrun locally (or a Kubeflow Trainer TrainJob when nodes > 1);
`trainer` is the module each torchrun worker runs; `component` is the KFP shell.
"""
