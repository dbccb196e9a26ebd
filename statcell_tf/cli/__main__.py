import sys

from statcell_tf.cli import main, run_command

if __name__ == "__main__":
    # `python -m statcell_tf.cli NAME ARGS` (used by the bin/ shims) or the group itself.
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        sys.exit(run_command(sys.argv[1], sys.argv[2:]))
    sys.exit(main())
