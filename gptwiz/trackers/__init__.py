"""A run's records logged where users already look: TensorBoard event files and Weights & Biases.

`scalars` names what each record logs (one table for both); `tensorboard` and `wandb` write it, live from the
trainer through `reporter.TrackingReporter`, or after the fact from metrics.jsonl (`tensorboard.replay`). Each
writer's package is optional and imported only when it is used.
"""
