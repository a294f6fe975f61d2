"""Running mnengine on clusters: :mod:`mnengine.integrations.ray` (Ray Data) and
:mod:`mnengine.integrations.dask` (Dask bags). Each needs its extra: ``pip install
"mnengine[ray]"`` or ``pip install "mnengine[dask]"``."""
