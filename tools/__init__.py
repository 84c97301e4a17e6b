"""The paper's experiments and the project's benchmarks, as scripts (not part of the installed package).

Every script runs from the repository root either as a file or as a module::

    python tools/fig2a.py --seeds 0-4 --steps 400 --batch 50
    python -m tools.fig2a --config tools/configs/fig2a-400-steps.yaml --seeds 0-1

The figures and studies are config-first (:mod:`tools._experiment`): one frozen dataclass per figure
(``Fig2aConfig``, ``Fig3aConfig``, ``Fig4Config``, ``SourceStudyConfig``, ...) holds every setting, loads from
YAML (``--config FILE``) and takes each setting as a command-line flag that overrides the file; one seed syntax
(``"3"`` is seed 3, ``"0-4"`` seeds 0 to 4, ``"0,2,5"`` those seeds); and one result-file class whose rows
are keyed by the hash of the settings that produced them, with the dwp-hub version and git commit.
The paper's network and defaults come from :mod:`dwp_hub.paper`.
"""
