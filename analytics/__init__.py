"""The analytics layer: influencers, segment profiles, trends, alerts and campaign KPIs.

One module per analysis; each has pure functions of data frames and one function that reads
the warehouse, computes and writes its table. `pipelines/analytics.py` runs them all.
"""
