"""Online agents that log every transition as Dopamine replay checkpoints.

`python -m batch_rl.log_data` runs Dopamine's online loop (`OnlineAgent`)
with a `LoggedReplayBuffer`, producing data laid out like the DQN Replay
Dataset; continuous agents run the same loop with
`continuous.replay_writer.LoggedEpisodeReplay`.
"""
