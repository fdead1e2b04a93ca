"""Exports: a scan folder -> files other systems load.

  stix.py    a STIX 2.1 bundle (campaigns, ATLAS technique, indicators, observed-data)
  misp.py    a MISP event (one object per campaign, the ATLAS galaxy tag)

What the threat-intel exports may carry, and how each kind of value is written, is
reviewed data (sharing.yaml, read by sharing.py); nothing here touches the pipeline.
"""
