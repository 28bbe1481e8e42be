"""The one compiled part: the default weight pass (shardscan/weights/_blockpass.c).

Optional: where no C compiler is found the install goes on and blocks.py computes the same
partials with NumPy, more slowly.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "shardscan.weights._blockpass",
            ["shardscan/weights/_blockpass.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
