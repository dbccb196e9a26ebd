"""Install statcell_tf and one console script per command (see statcell_tf/cli)."""

from pathlib import Path

from setuptools import find_packages, setup

here = Path(__file__).parent
commands = sorted(
    path.stem.replace("_", "-")
    for path in (here / "statcell_tf" / "cli").glob("*.py")
    if not path.stem.startswith("_")
)
requirements = [
    line.split("#")[0].strip()
    for line in (here / "requirements.txt").read_text().splitlines()
    if line.split("#")[0].strip() and not line.startswith(("pytest", "ruff"))
]

setup(
    name="statcell_tf",
    version="0.1.0",
    description="Representation learning for single-cell microscopy: cytoself, Statistical Cell, "
    "Integrated Cell and VAE+ in TensorFlow 2 / Keras 3.",
    long_description=(here / "README.md").read_text() if (here / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["statcell_tf", "statcell_tf.*"]),
    install_requires=requirements,
    entry_points={
        "console_scripts": ["statcell = statcell_tf.cli:main"]
        + [f"{name} = statcell_tf.cli._entry:{name.replace('-', '_')}" for name in commands]
    },
)
