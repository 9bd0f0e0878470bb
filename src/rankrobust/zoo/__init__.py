"""The zoo: many models evaluated by one command (docs/zoo.md).

RobustBench's leaderboard entries ship with the package (`robustbench_entries`, selectable by
dataset, threat model and architecture); a zoo yaml lists entries (`read_zoo`). Each entry
becomes one job of a Hydra multirun (`rankrobust.launch.zoo`).
"""

from rankrobust.zoo.entries import (
    Entry,
    parse_entries,
    read_zoo,
    robustbench_entries,
    robustbench_entry,
)

__all__ = ["Entry", "parse_entries", "read_zoo", "robustbench_entries", "robustbench_entry"]
