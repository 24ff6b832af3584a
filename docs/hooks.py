"""MkDocs hook: drop nav entries whose page does not exist (yet).

The "Topics" section of mkdocs.yml lists pages that other branches add; until a
page is merged its entry is left out of the navigation (logged at INFO), so that
``mkdocs build --strict`` passes both before and after the merge.
"""

import logging
import os

log = logging.getLogger("mkdocs.hooks.nav")


def _prune(items, docs_dir):
    kept = []
    for item in items:
        if isinstance(item, dict):
            (title, value), = item.items()
            if isinstance(value, list):
                value = _prune(value, docs_dir)
                if value:
                    kept.append({title: value})
                continue
            if isinstance(value, str) and "://" not in value and not os.path.exists(os.path.join(docs_dir, value)):
                log.info("nav: %s (%s) is not written yet; left out", title, value)
                continue
        kept.append(item)
    return kept


def on_config(config):
    if config["nav"]:
        config["nav"] = _prune(config["nav"], config["docs_dir"])
    return config
