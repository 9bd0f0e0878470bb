"""Scale-out plumbing below the task: GPU leases (lease.py), sweep summaries (summary.py), DDP
child processes (ddp.py), this job's command line (jobs.py). See docs/scale-out.md.

`python -m rankrobust.launch summarize <sweep dir>` (re)writes a sweep's summary by hand (e.g.
after a SLURM job was killed before Hydra could write it).
"""
