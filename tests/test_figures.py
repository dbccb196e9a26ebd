"""Every figure of the four papers, drawn from tiny synthetic inputs and read like a reader would:
no two visible texts overlap, no text leaves the canvas, every axis and colour bar is labelled
(`figures.text_problems`, measured with the renderer's text extents). Plus the colour table (same
name → same colour everywhere), the image display (a brighter cell looks brighter, one range per
figure) and the gallery page.

`test_every_png_writer_is_drawn_here` keeps the list honest: every function of the package that
calls `save_figure` must be drawn by a test of this file.
"""

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from statcell_tf import atomic, figures, gallery

PACKAGE = Path(__file__).resolve().parents[1] / "statcell_tf"
PHASES = ["interphase", "prophase", "metaphase", "anaphase"]
STRUCTURES = [f"structure_{i:02d}" for i in range(24)]
RNG = np.random.default_rng(0)

# Every function that saves a figure (module path: function), and the test below that draws it.
PNG_WRITERS = {
    "cli/classify_structures.py:command": "test_integrated_cell_figures (plot_confusion)",
    "cli/generate_cells.py:command": "test_image_grid_generated_cells (figures.image_grid)",
    "cli/impute_structures.py:command": "test_imputed_figure (latent_stats.imputed_figure)",
    "cli/integrate_structures.py:command": "test_integrated_cell_figures (integration_montage)",
    "cli/interpolate.py:command": "test_vaeplus_figures (interpolation_figure)",
    "cli/latent_walk.py:command": "test_walk_figure (latent_stats.walk_figure)",
    "cytoself/feature_spectrum.py:plot_spectrum": "test_cytoself_spectra",
    "cytoself/feature_spectrum.py:plot_family_spectra": "test_cytoself_spectra",
    "cytoself/feature_spectrum.py:plot_correlation_heatmap": "test_cytoself_spectra",
    "cytoself/feature_spectrum.py:plot_cluster_examples": "test_cytoself_images",
    "cytoself/interpretation.py:plot_feature_removal": "test_cytoself_images",
    "cytoself/training.py:write_panel": "test_cytoself_images (reconstruction_panel)",
    "cytoself/umap_atlas.py:plot_umap": "test_umap",
    "data/prepare/montage.py:write_montages": "test_prepare_montage",
    "integrated_cell/training.py:callback": "test_integrated_cell_figures (reconstruction_figure)",
    "profiling/report.py:plot_activity": "test_profiling_report",
    "profiling/report.py:plot_consistency": "test_profiling_report",
    "statcell/beta_sweep.py:write_outputs": "test_beta_sweep_figures",
    "statcell/coupling.py:write_coupling": "test_coupling_figures",
    "statcell/latent_stats.py:latent_stats": "test_latent_statistics_figures",
    "statcell/perturbation.py:write_perturbation": "test_perturbation_figures",
    "statcell/training.py:_reconstruction_figure": "test_statcell_reconstruction",
    "vaeplus/training.py:reconstruction_panel": "test_vaeplus_figures",
}


@pytest.fixture
def checked(monkeypatch):
    """Check every figure the code saves before it is written; fail on any reader-visible problem."""
    seen = []
    original = atomic.save_figure

    def save_checked(path, figure, **kwargs):
        seen.append((Path(path).name, figures.text_problems(figure)))
        return original(path, figure, **kwargs)

    monkeypatch.setattr(atomic, "save_figure", save_checked)
    yield seen
    problems = [f"{name}: {p}" for name, found in seen for p in found]
    assert not problems, "\n".join(problems)


def check(figure):
    problems = figures.text_problems(figure)
    figures.pyplot().close(figure)
    assert not problems, "\n".join(problems)


# ----- the checker itself -----------------------------------------------------------------------
def test_checker_finds_overlap_outside_text_and_missing_labels():
    figure, axes = figures.new_figure()
    ax = axes[0, 0]
    ax.plot([0, 1], [0, 1])
    ax.text(0.5, 0.5, "first label")
    ax.text(0.5, 0.5, "second label")
    figure.text(1.2, 0.5, "far away")
    image = ax.scatter([0], [0], c=[1])
    figure.colorbar(image, ax=ax)
    problems = figures.text_problems(figure)
    figures.pyplot().close(figure)
    assert any("'first label' and 'second label' overlap" in p for p in problems)
    assert any("'far away' lies outside" in p for p in problems)
    assert any("x axis has tick labels but no label" in p for p in problems)
    assert any("y axis has tick labels but no label" in p for p in problems)
    assert any("colour bar has no label" in p for p in problems)


def test_checker_passes_a_clean_figure():
    figure, axes = figures.new_figure()
    axes[0, 0].plot([0, 1], [0, 1])
    axes[0, 0].set_xlabel("x (m)")
    axes[0, 0].set_ylabel("y (m)")
    axes[0, 0].set_title("clean")
    check(figure)


# ----- colour table and image display -------------------------------------------------------
def test_same_name_same_colour_in_every_figure():
    one = figures.category_colours(["metaphase", "interphase"])
    other = figures.category_colours(PHASES + ["prometaphase"])
    assert one["metaphase"] == other["metaphase"] == figures.PHASE_COLOURS["metaphase"]
    assert one["interphase"] == other["interphase"] == "#8c564b"  # the paper's brown
    families = ["golgi", "er", "nucleolus", "mitochondria"]
    assert figures.category_colours(families) == figures.category_colours(list(reversed(families)) * 2)
    assert len(set(figures.category_colours(families).values())) == 4
    many = figures.category_colours([f"c{i}" for i in range(30)])
    assert len(set(many.values())) == 30


def test_phase_colours_agree_between_panels_and_figures():
    """Fig. 5a, 5b and the pairwise plot draw metaphase in the same colour, whatever the panel holds."""
    from matplotlib.colors import to_hex

    from statcell_tf.statcell import coupling, latent_stats

    per_cell = _per_cell(STRUCTURES[:3])
    per_cell = per_cell[~((per_cell.structure_name == STRUCTURES[0]) & (per_cell.cell_cycle_phase == "prophase"))]
    scatter = coupling.scatter_figure(per_cell)
    seen = {}
    for ax in scatter.axes:
        for collection in ax.collections:
            if len(collection.get_offsets()):
                seen.setdefault(collection.get_label(), set()).add(to_hex(collection.get_facecolor()[0]))
    pairwise = latent_stats.pairwise_figure(RNG.normal(size=(20, 2)), ["mu_0", "mu_1"],
                                            pd.Series(PHASES * 5, name="cell_cycle_phase"))
    for collection in pairwise.axes[1].collections:
        seen.setdefault(collection.get_label(), set()).add(to_hex(collection.get_facecolor()[0]))
    figures.pyplot().close("all")
    for phase in PHASES:
        assert seen[phase] == {figures.PHASE_COLOURS[phase]}, phase


def test_a_brighter_cell_looks_brighter():
    dim = np.zeros((8, 8, 2), "float32")
    dim[2:6, 2:6] = [0.2, 0.1]
    bright = dim * 4
    scale = figures.display_range([dim, bright], ["membrane", "dna"], percentiles=(0, 100))
    # Per-image scaling would show both the same; on one range the 4× brighter cell is 4× brighter.
    np.testing.assert_allclose(scale.scaled(bright).sum(), 4 * scale.scaled(dim).sum(), rtol=1e-5)
    assert scale.rgb(bright).sum() > 2 * scale.rgb(dim).sum()
    assert scale.statement == "each channel scaled to [p0, p100] of the cells shown"
    np.testing.assert_allclose(scale.low, [0, 0])
    np.testing.assert_allclose(scale.high, [0.8, 0.4])
    # Known colours: membrane magenta, DNA cyan-blue; a full membrane pixel is (1, 0, 1).
    np.testing.assert_allclose(scale.rgb(bright)[3, 3], [1.0, 0.6, 1.0])
    np.testing.assert_allclose(scale.rgb(bright, channels=[0])[3, 3], [1.0, 0.0, 1.0])


def test_display_range_projects_3d_and_ignores_nan():
    volume = np.zeros((3, 4, 4, 1), "float32")
    volume[1, 2, 2, 0] = 5.0
    volume[0, 0, 0, 0] = np.nan
    scale = figures.display_range([volume], ["structure"], percentiles=(0, 100))
    assert scale.high == (5.0,)
    assert scale.rgb(volume)[2, 2].tolist() == [1.0, 1.0, 0.0]  # structure yellow


# ----- statcell -----------------------------------------------------------------------------
def _per_cell(structures):
    rows = [dict(structure_name=s, cell_cycle_phase=PHASES[k % 4], coupling_membrane=RNG.random(),
                 coupling_dna=RNG.random(), elbo=-1.0, ratio_membrane=0.5, ratio_dna=0.5)
            for s in structures for k in range(8)]
    return pd.DataFrame(rows)


def test_coupling_figures(tmp_path, checked):
    from statcell_tf.statcell import coupling

    coupling.write_coupling(_per_cell(STRUCTURES), tmp_path)  # a panel grid of 24 structures
    assert [name for name, _ in checked] == ["fig5a_scatter.png", "fig5b_differential.png"]


def test_fig5b_says_its_error_bars_and_n():
    from statcell_tf.statcell import coupling

    per_cell = coupling.with_differential(_per_cell(STRUCTURES[:3]), "strength")
    figure = coupling.differential_figure(coupling.summarise(per_cell))
    texts = " ".join(t.get_text() for t in figure.legends[0].get_texts()) + figure.legends[0].get_title().get_text()
    figures.pyplot().close(figure)
    assert "SEM" in texts and "n = 6 cells" in texts  # 3 structures × 2 cells per phase


def test_latent_statistics_figures(tmp_path, checked):
    from statcell_tf.statcell import latent_stats

    mu = RNG.normal(size=(30, 6))
    names = [f"mu_{d}" for d in range(4)]
    features = pd.DataFrame(RNG.normal(size=(30, 5)), columns=["cell_volume", "nucleus_volume", "cell_height",
                                                              "dna_intensity", "membrane_intensity"])
    for figure, name in (
        (latent_stats.kld_figure(np.sort(RNG.random(6))[::-1]), "kld"),
        (latent_stats.heatmap_figure(latent_stats.spearman_table(mu[:, :4], features, names), "Spearman (Fig. S3a)"),
         "spearman"),
        (latent_stats.matrix_figure(latent_stats.pearson_among(mu[:, :4]), names, "Pearson (Fig. S3d)"), "pearson"),
        (latent_stats.pairwise_figure(mu[:, :4], names, pd.Series(PHASES * 7 + PHASES[:2], name="cell_cycle_phase"),
                                      "by phase"), "phase"),
        (latent_stats.pairwise_figure(mu[:, :4], names, features["cell_height"], "by height"), "height"),
        (latent_stats.pairwise_figure(mu[:, :4], names, None, "plain"), "none"),
    ):
        atomic.save_figure(tmp_path / f"{name}.png", figure)
    assert len(checked) == 6


def test_pairwise_histograms_count_cells_not_mu():
    from statcell_tf.statcell import latent_stats

    figure = latent_stats.pairwise_figure(RNG.normal(size=(10, 3)), ["mu_0", "mu_1", "mu_2"])
    axes = np.array(figure.axes).reshape(3, 3)
    assert [axes[i, i].get_ylabel() for i in range(3)] == ["cells"] * 3
    assert [axes[i, 0].get_ylabel() for i in (1, 2)] == ["μ1", "μ2"]
    figures.pyplot().close(figure)


def test_walk_figure(tmp_path, checked):
    from statcell_tf.statcell import latent_stats

    steps = 9
    walk = np.zeros((3, steps, 16, 16, 2), "float32")
    for s in range(steps):
        walk[:, s, 4:12, 4:12] = 0.1 + 0.1 * s  # intensity rises along every walk
    figure = latent_stats.walk_figure(walk, [7, 3, 12], np.linspace(-2, 2, steps), ["membrane", "dna"],
                                      {"mu_7": ("dna_intensity", 0.91), "mu_3": ("cell_height", -0.6)},
                                      title="decoded from z, all other dimensions 0 (Fig. 2c)")
    shown = [ax.get_images()[0].get_array() for ax in figure.axes if ax.get_images()][:steps]
    assert np.asarray(shown[-1]).sum() > 3 * np.asarray(shown[0]).sum()  # the change stays visible
    labels = [ax.get_ylabel() for ax in figure.axes if ax.get_ylabel()]
    assert labels[0] == "μ7\ndna intensity\nρ = +0.91" and labels[2] == "μ12"
    atomic.save_figure(tmp_path / "latent_walk.png", figure)


def test_imputed_figure(tmp_path, checked):
    from statcell_tf.statcell import latent_stats

    reference = RNG.random((16, 16, 2)).astype("float32")
    draws = {"nuclear_envelope": RNG.random((3, 16, 16, 1)), "microtubules": RNG.random((3, 16, 16, 1))}
    figure = latent_stats.imputed_figure(reference, draws, ["membrane", "dna", "structure"],
                                         observed=RNG.random((16, 16, 1)), observed_name="microtubules",
                                         title="imputed structures in cell 7 (Fig. 4b)")
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    assert titles == ["cell: membrane + DNA", "real structure", "draw 1", "draw 2", "draw 3", "draw 1 on cell"]
    # A draw is shown as the structure channel alone (yellow: no blue), next to the composite.
    draw = np.asarray([ax for ax in figure.axes if ax.get_title() == "draw 1"][0].get_images()[0].get_array())
    assert draw[..., 2].max() == 0 and draw[..., 0].max() > 0
    key = figure.legends[0]
    assert [t.get_text() for t in key.get_texts()] == ["membrane", "dna", "structure"]
    assert "scaled to [p0.1, p99.9]" in key.get_title().get_text()
    atomic.save_figure(tmp_path / "imputed.png", figure)


def test_image_grid_generated_cells(tmp_path, checked):
    real, generated = RNG.random((3, 16, 16, 2)), RNG.random((8, 16, 16, 2))
    scale = figures.display_range(list(real), ["membrane", "dna"], of="the real test cells")
    atomic.save_figure(tmp_path / "generated.png", figures.image_grid(
        [list(real), list(generated)], scale, ["real (test)", "generated"], title="cells from the prior (Fig. 4a)"))


def test_perturbation_figures(tmp_path, checked):
    from statcell_tf.statcell import perturbation

    groups = [{"space": space, "structure": structure, "treatment": "rounding",
               "untreated": RNG.normal(size=(12, 4)), "treated": RNG.normal(1, size=(10, 4)),
               "images_untreated": RNG.random((12, 16, 16, 3)), "images_treated": RNG.random((10, 16, 16, 3))}
              for space, structure in (("reference", "all"), ("target", "microtubules"), ("target", "golgi"))]
    perturbation.write_perturbation(groups, tmp_path, n_permutations=20, n_images=6)
    assert sorted(name for name, _ in checked)[0] == "fig6b_embedding.png" and len(checked) == 4


def test_beta_sweep_figures(tmp_path, checked):
    import json

    from statcell_tf.statcell import beta_sweep

    runs = []
    for beta in (0.1, 0.5, 0.9):
        run = tmp_path / f"beta_{beta}"
        run.mkdir()
        (run / beta_sweep.RESULT_FILE).write_text(json.dumps({"beta": beta, "kld_by_rank": list(RNG.random(8))}))
        runs.append(str(run))
    frame = pd.DataFrame({"beta": [0.1, 0.5, 0.9], "rate": [9.0, 4.0, 1.0], "distortion": [10.0, 12.0, 20.0],
                          "run": runs})
    beta_sweep.write_outputs(frame, tmp_path / "out")
    assert [name for name, _ in checked] == ["rate_distortion.png", "kld_by_rank.png"]


def test_rate_distortion_marks_the_best_beta():
    from statcell_tf.statcell import beta_sweep

    frame = pd.DataFrame({"beta": [0.1, 0.5, 0.9], "rate": [9.0, 4.0, 1.0], "distortion": [10.0, 12.0, 20.0]})
    figure = beta_sweep.rate_distortion_figure(frame)
    legend = figure.legends[0].get_texts()[0].get_text()
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    figures.pyplot().close(figure)
    assert legend.startswith("best β = 0.5 ")  # D + R: 19, 16, 21
    assert titles == ["rate and distortion vs β", "rate–distortion curve"]


def test_statcell_reconstruction(tmp_path, checked):
    from statcell_tf.statcell.training import _reconstruction_figure

    class Data:  # the two StatcellData members the figure reads
        role = "reference"

        def batch(self, rows):
            return {"image": RNG.random((len(rows), 16, 16, 2)).astype("float32")}

    def model(batch, training=False):
        return batch["image"] * 0.5

    _reconstruction_figure(model, Data(), np.arange(6), tmp_path / "reconstruction_epoch001.png",
                           "reference model, epoch 1, β = 0.1: validation cells; val elbo -3.2")


# ----- cytoself -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spectrum():
    from statcell_tf.cytoself.feature_spectrum import build_feature_spectrum

    hist, proteins, families = [], [], []
    for family in range(6):
        base = np.full(48, 0.3 / 48)
        base[family * 8:(family + 1) * 8] += 0.7 / 8
        for p in range(3):
            for _ in range(5):
                hist.append(RNG.multinomial(400, base / base.sum()))
                proteins.append(f"P{family}{p}")
                families.append(f"family_{family}")
    return build_feature_spectrum(np.array(hist), np.array(proteins), np.array(families), n_clusters=11)


def test_cytoself_spectra(spectrum, tmp_path, checked):
    from statcell_tf.cytoself import feature_spectrum as fsm

    fsm.plot_spectrum(spectrum, "P00", tmp_path / "spectrum.png")
    fsm.plot_family_spectra(spectrum, tmp_path / "family_spectra.png")
    fsm.plot_correlation_heatmap(spectrum, tmp_path / "correlation_heatmap.png")
    assert len(checked) == 3


def test_cytoself_images(spectrum, tmp_path, checked):
    from statcell_tf.cytoself import feature_spectrum as fsm
    from statcell_tf.cytoself import interpretation
    from statcell_tf.cytoself.training import reconstruction_panel

    images = {c: RNG.random((4, 16, 16, 2)) for c in spectrum.cluster_numbers}
    fsm.plot_cluster_examples(images, tmp_path / "cluster_examples.png", {c: ["P00", "P01", "P02", "P10"] for c in images})
    stack = RNG.random((3, 16, 16, 2))
    removal = interpretation.FeatureRemoval(stack, stack * 0.9, stack * 0.7, np.arange(3))
    interpretation.plot_feature_removal(removal, tmp_path / "removal.png", title="P00: without feature cluster iii",
                                        captions=["P00 #1", "P00 #2", "P00 #3"])

    class Model:
        def preprocess(self, x):
            return x

        def reconstruct(self, x):
            return x * 0.8

    figure = reconstruction_panel(Model(), RNG.random((6, 16, 16, 2)), ["protein", "nucleus"],
                                  "cytoself epoch 3: validation images; val reconstruction loss 0.1 (Fig. 1a)")
    atomic.save_figure(tmp_path / "reconstruction_epoch003.png", figure)
    assert len(checked) == 3


def test_umap(tmp_path, checked):
    from statcell_tf.cytoself.umap_atlas import plot_umap

    labels = [f"family_{i % 9}" for i in range(300)] + [""] * 50
    plot_umap(RNG.normal(size=(350, 2)), labels, tmp_path / "umap.png",
              title="demo: global embeddings per image, by family, of the test split")


# ----- integrated cell, VAE+, profiling, data -------------------------------------------------------
def test_integrated_cell_figures(tmp_path, checked):
    from statcell_tf.integrated_cell import analysis

    names = STRUCTURES[:10]
    matrix = RNG.integers(0, 9, size=(10, 10))
    atomic.save_figure(tmp_path / "confusion_matrix.png", analysis.plot_confusion(matrix, names, "test cells: accuracy 40%"))
    figure = analysis.integration_montage(RNG.random((16, 16, 2)), RNG.random((10, 16, 16)), names,
                                          observed=RNG.random((16, 16)), observed_name=names[2], title="cell 7:")
    atomic.save_figure(tmp_path / "integrated_7.png", figure)
    figure = analysis.reconstruction_figure(RNG.random((6, 16, 16, 3)), RNG.random((6, 16, 16, 3)),
                                            title="conditional model, epoch 2")
    atomic.save_figure(tmp_path / "reconstructions.png", figure)


def test_vaeplus_figures(tmp_path, checked):
    import tensorflow as tf

    from statcell_tf.vaeplus.training import interpolation_figure, reconstruction_panel

    class Model:
        def reconstruct(self, x):
            return tf.constant(x * 0.5)

    names = ["DNA", "tubulin", "actin"]
    reconstruction_panel(Model(), RNG.random((8, 16, 16, 3)).astype("float32"), names, tmp_path / "reconstructions.png")
    frames = RNG.random((8, 16, 16, 3))
    figure = interpolation_figure(RNG.random((16, 16, 3)), frames, RNG.random((16, 16, 3)), np.linspace(0.2, 1, 8),
                                  names, title="VAE+ interpolation w1 → taxol 0.3")
    atomic.save_figure(tmp_path / "interpolation.png", figure)


def test_profiling_report(tmp_path, checked):
    from statcell_tf.profiling import report

    activity = pd.DataFrame({"method": ["vaeplus"] * 4 + ["cellprofiler"] * 4,
                             "kind": ["treatment", "treatment", "treatment", "null check"] * 2,
                             "mean_average_precision": RNG.random(8), "corrected_p_value": RNG.random(8) * 0.1})
    report.plot_activity(activity, tmp_path / "activity.png", 0.05)
    consistency = pd.DataFrame({"Metadata_moa": ["Actin disruptors", "Microtubule stabilizers", "DNA damage"] * 2,
                                "method": ["vaeplus"] * 3 + ["cellprofiler"] * 3,
                                "mean_average_precision": RNG.random(6)})
    report.plot_consistency(consistency, tmp_path / "consistency.png")


def test_prepare_montage(tmp_path, checked):
    from statcell_tf.data import prepare

    class Writer:  # the two _Writer members the montage reads
        def tables(self, chunks):
            for chunk in chunks:
                yield chunk, pd.DataFrame({"field": ["f1"] * 5, "nucleus_label": range(5), "well": ["A01"] * 5})

        def display(self, chunk, row, position):
            return RNG.random((16, 16, 3))

    @dataclasses.dataclass
    class Config:
        group_column: str = "well"

    paths = prepare.write_montages(tmp_path, Config(), Writer(), ["c0", "c1"])
    assert [p.name for p in paths] == ["A01.png"]


# ----- coverage and gallery -------------------------------------------------------------------------
def _png_writers():
    found = set()
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for inner in ast.walk(node):
                    if (isinstance(inner, ast.Call) and getattr(inner.func, "attr", getattr(inner.func, "id", ""))
                            == "save_figure" and _innermost(node, inner)):
                        found.add(f"{path.relative_to(PACKAGE).as_posix()}:{node.name}")
    return found


def _innermost(function, call):
    """True when no function nested in `function` holds `call` (the call belongs to `function`)."""
    for child in ast.walk(function):
        if child is not function and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if any(inner is call for inner in ast.walk(child)):
                return False
    return True


def test_every_png_writer_is_drawn_here():
    writers = _png_writers() - {"atomic.py:save_figure"}
    assert writers == set(PNG_WRITERS), (f"not drawn here: {sorted(writers - set(PNG_WRITERS))}; "
                                        f"gone: {sorted(set(PNG_WRITERS) - writers)}")


def test_gallery_lists_every_png_with_its_caption(tmp_path):
    figure, axes = figures.new_figure()
    axes[0, 0].plot([0, 1])
    figure.suptitle("a < b & c (Fig. 1)")
    png = atomic.save_figure(tmp_path / "run" / "one.png", figure)
    page = gallery.write_gallery(tmp_path / "gallery.html", [png], title="demo")
    text = page.read_text()
    assert '<img src="run/one.png"' in text
    assert "a &lt; b &amp; c (Fig. 1)" in text
    assert gallery.png_caption(png) == "a < b & c (Fig. 1)"
