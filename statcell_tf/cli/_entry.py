"""Console-script entry points: ``statcell_tf.cli._entry:train_cytoself`` runs ``train-cytoself``."""

import sys

from statcell_tf.cli import run_command


def __getattr__(attribute: str):
    name = attribute.replace("_", "-")

    def entry() -> None:
        sys.exit(run_command(name, sys.argv[1:]))

    return entry
