"""Well-known marker genes of the blood cell types in the PBMC data, with their sources.

Each module is a short list of genes that are high in one cell type, taken from two published
tables (genes missing from a data set are dropped where a module is used):

- [Seurat] the canonical markers of the Seurat PBMC 3k tutorial ("Guided clustering tutorial",
  satijalab.org/seurat/articles/pbmc3k_tutorial; the same table as scanpy's PBMC 3k tutorial):
  IL7R, CCR7 (naive CD4 T); CD14, LYZ (CD14+ monocytes); MS4A1 (B); CD8A (CD8 T); FCGR3A, MS4A7
  (FCGR3A+ monocytes); GNLY, NKG7 (NK); FCER1A, CST3 (dendritic cells).
- [Azimuth] the marker genes of the Azimuth human PBMC reference (Hao et al., "Integrated
  analysis of multimodal single-cell data", Cell 184, 2021; azimuth.hubmapconsortium.org,
  "Human - PBMC", level-2 cell types), as recalled, not re-read: CD4 Naive, CD8 TEM, NK,
  B naive, CD14 Mono, CD16 Mono, cDC2 and HSPC.
- [scanpy] the T-cell marker CD3D of scanpy's plotting tutorial on pbmc68k_reduced.

Of these, the bundled pbmc68k_reduced cells (765 genes) lack TCF7, LEF1, FOXP3, CD14, MS4A7,
CD1C, CD34 and a few more; every module keeps at least four of its genes.
"""

from __future__ import annotations

PBMC_MARKERS: dict[str, tuple[str, ...]] = {
    # [scanpy] CD3D; [Azimuth] CD4 Naive / CD4 TCM: IL32, LTB. CD3E and CD2: the T-cell receptor
    # complex and its co-receptor, present on every T cell.
    "T cell": ("CD3D", "CD3E", "CD2", "IL32", "LTB"),
    # [Seurat] IL7R, CCR7; [Azimuth] CD4 Naive: CD4, MAL, LDHB, TCF7, LEF1.
    "CD4 T": ("IL7R", "CCR7", "CD4", "MAL", "LDHB", "TCF7", "LEF1"),
    # [Seurat] CD8A; [Azimuth] CD8 TEM: CD8B, CCL5, GZMK, GZMH, CST7.
    "CD8 T": ("CD8A", "CD8B", "CCL5", "GZMK", "GZMH", "CST7"),
    # [Seurat] GNLY, NKG7; [Azimuth] NK: TYROBP, FCER1G, GZMB, PRF1, FGFBP2, SPON2, KLRF1.
    "NK": ("GNLY", "NKG7", "TYROBP", "FCER1G", "GZMB", "PRF1", "FGFBP2", "SPON2", "KLRF1"),
    # [Seurat] MS4A1; [scanpy] CD79A; [Azimuth] B naive: CD79B, BANK1, TCL1A.
    "B": ("MS4A1", "CD79A", "CD79B", "BANK1", "TCL1A"),
    # [Seurat] CD14, LYZ; [Azimuth] CD14 Mono: S100A8, S100A9, CTSS, FCN1, IL1B, G0S2.
    "CD14 monocyte": ("CD14", "LYZ", "S100A8", "S100A9", "CTSS", "FCN1", "IL1B", "G0S2"),
    # [Seurat] FCGR3A, MS4A7; [Azimuth] CD16 Mono: LST1, AIF1, IFITM3, RHOC, HES4.
    "FCGR3A monocyte": ("FCGR3A", "MS4A7", "LST1", "AIF1", "IFITM3", "RHOC", "HES4"),
    # [Seurat] FCER1A, CST3; [Azimuth] cDC2: HLA-DQA1, CLEC10A, CD1C, PLD4.
    "Dendritic": ("FCER1A", "CST3", "HLA-DQA1", "CLEC10A", "CD1C", "PLD4"),
    # [Azimuth] HSPC: SPINK2, PRSS57, CYTL1, EGFL7, GATA2, CD34.
    "HSPC (CD34+)": ("SPINK2", "PRSS57", "CYTL1", "EGFL7", "GATA2", "CD34"),
}

# The module of known markers of each annotated cell type of the bundled PBMC cells (Zheng et
# al. 2017's bulk labels), for tests of marker recovery; T-cell subtypes share markers and are
# left out.
PBMC_CELL_TYPE_MODULES: dict[str, str] = {
    "CD19+ B": "B",
    "CD56+ NK": "NK",
    "CD14+ Monocyte": "CD14 monocyte",
    "CD34+": "HSPC (CD34+)",
    "Dendritic": "Dendritic",
}


def markers_present(gene_names, modules: dict | None = None) -> dict[str, list[str]]:
    """The modules restricted to the genes of a data set (``gene_names``), in module order."""
    present = set(map(str, gene_names))
    modules = PBMC_MARKERS if modules is None else modules
    return {name: [gene for gene in genes if gene in present] for name, genes in modules.items()}
