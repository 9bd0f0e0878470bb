"""`python -m rankrobust.reporting.figures RUNS --out DIR`: the paper's figures."""

from rankrobust.reporting.figures import main

raise SystemExit(main())
