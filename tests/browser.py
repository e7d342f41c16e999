"""A real headless browser for tests: Debian's chromium driven through chromedriver by
selenium. ``install()`` fetches the two packages with apt when they are missing (as
slurm_cluster does for SLURM); ``session()`` opens a browser and always closes it."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator

import apt_packages

PACKAGES = ("chromium", "chromium-driver")
BROWSER, DRIVER = "chromium", "chromedriver"


def install() -> str | None:
    """Install chromium and its driver if missing; the reason it failed, else None."""
    return apt_packages.install(PACKAGES, (BROWSER, DRIVER))


@contextlib.contextmanager
def session(width: int = 1400, height: int = 1000) -> Iterator:
    """A headless chromium (selenium WebDriver); the system's chromedriver, so selenium
    never tries to download one."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which(BROWSER)
    for arg in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--window-size={width},{height}",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which(DRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
