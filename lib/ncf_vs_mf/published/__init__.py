"""Published numbers the book compares with (copied from the papers, with their sources)."""

from __future__ import annotations

from importlib import resources

import pandas as pd


def _read(name: str) -> pd.DataFrame:
    with resources.files(__name__).joinpath(name).open("r", encoding="utf-8") as fh:
        return pd.read_csv(fh)


def ncf_curves() -> pd.DataFrame:
    """NCF's MLP and NeuMF HR@10/NDCG@10 by embedding dimension (Rendle et al.'s Figure 2)."""
    return _read("ncf_published.csv")


def mlp_layers() -> pd.DataFrame:
    """NCF Tables 3-4: MLP with 0 to 4 hidden layers by predictive factor."""
    return _read("mlp_layers_published.csv")


def table1() -> pd.DataFrame:
    """Rendle et al. Table 1 and further baselines on the same NCF splits."""
    return _read("table1_baselines.csv")
