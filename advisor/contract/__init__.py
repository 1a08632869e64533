"""The language every package of advise shares, and the two files it passes between its stages.

* ``errors``  the error base (``AdviseError``: one line a user can act on) and catalog lookups' did-you-mean;
* ``vocab``   every enumerated concept (techniques, methods, approaches, serving, sharding, ...) with its keys
  in one order and how each reads;
* ``units``   numbers for people (money, durations, memory) and rounding for byte-stable JSON;
* ``answers`` the answers file (``answers.yaml``) a team fills in;
* ``plan``    the plan (``plan.json``) the planner writes and the report and the exporters read;
* ``files``   bounded strict reading and safe writing of every file (the output manifest, the profile lock);
* ``text``    the characters that never reach a terminal or a one-line value raw, and their escaping.

These modules import nothing else of the project, so ``estimators/``, ``profiler/`` and ``reports/`` may import
them (and nothing else of ``advisor/``).
"""
