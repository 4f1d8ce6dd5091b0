"""Register SpatialQwenAudio with the transformers Auto classes, without making `import hf_spatial` slow.

Registering needs the classes, and importing them pulls in torch and transformers' modeling and processing stacks
(several seconds). So `install()` registers right away with every transformers Auto module that is already
imported, and hooks the others: each registration runs the moment its Auto module (`configuration_auto`,
`modeling_auto`, `feature_extraction_auto`, `processing_auto`) finishes importing, i.e. before any Auto class can
be used. `register_all()` does everything eagerly.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
from collections.abc import Callable

_FOLDER = "hf_spatial.models.spatial_qwen_audio"


def _config_class():
    from hf_spatial.models.spatial_qwen_audio.configuration_spatial_qwen_audio import SpatialQwenAudioConfig

    return SpatialQwenAudioConfig


def _register_config() -> None:
    from transformers.models.auto.configuration_auto import AutoConfig

    config_class = _config_class()
    AutoConfig.register(config_class.model_type, config_class, exist_ok=True)
    config_class.register_for_auto_class("AutoConfig")


def _register_models() -> None:
    from transformers.models.auto.modeling_auto import AutoModel, AutoModelForCausalLM, AutoModelForMultimodalLM

    from hf_spatial.models.spatial_qwen_audio.modeling_spatial_qwen_audio import (
        SpatialQwenAudioForConditionalGeneration,
        SpatialQwenAudioModel,
    )

    config_class = _config_class()
    AutoModel.register(config_class, SpatialQwenAudioModel, exist_ok=True)
    AutoModelForMultimodalLM.register(config_class, SpatialQwenAudioForConditionalGeneration, exist_ok=True)
    AutoModelForCausalLM.register(config_class, SpatialQwenAudioForConditionalGeneration, exist_ok=True)
    SpatialQwenAudioModel.register_for_auto_class("AutoModel")
    SpatialQwenAudioForConditionalGeneration.register_for_auto_class("AutoModelForMultimodalLM")


def _register_feature_extractor() -> None:
    from transformers.models.auto.feature_extraction_auto import AutoFeatureExtractor

    from hf_spatial.models.spatial_qwen_audio.feature_extraction_spatial_qwen_audio import FOAFeatureExtractor

    AutoFeatureExtractor.register(_config_class(), FOAFeatureExtractor, exist_ok=True)
    FOAFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")


def _register_processor() -> None:
    from transformers.models.auto.processing_auto import AutoProcessor

    from hf_spatial.models.spatial_qwen_audio.processing_spatial_qwen_audio import SpatialQwenAudioProcessor

    AutoProcessor.register(_config_class(), SpatialQwenAudioProcessor, exist_ok=True)
    SpatialQwenAudioProcessor.register_for_auto_class("AutoProcessor")


_REGISTRATIONS: dict[str, Callable[[], None]] = {
    "transformers.models.auto.configuration_auto": _register_config,
    "transformers.models.auto.modeling_auto": _register_models,
    "transformers.models.auto.feature_extraction_auto": _register_feature_extractor,
    "transformers.models.auto.processing_auto": _register_processor,
}
_done: set[str] = set()
_loaded_triggers: set[str] = set()
_depth = 0  # transformers / hf_spatial modules being executed right now (through our loader)
_registering = False


def _run_pending() -> None:
    """Register with every Auto module that has finished importing, once no transformers import is in progress
    (registering in the middle of one, e.g. while `configuration_qwen2_audio` imports `AutoConfig`, would import our
    modules against half-initialised transformers modules)."""
    global _registering
    if _depth or _registering:
        return
    _registering = True
    try:
        # Registering imports our modules, which may finish importing another Auto module (its trigger arrives
        # while `_registering` is set): loop until nothing is pending.
        while pending := [name for name in _REGISTRATIONS if name in _loaded_triggers and name not in _done]:
            for module_name in pending:
                _done.add(module_name)
                _REGISTRATIONS[module_name]()
    finally:
        _registering = False
    if len(_done) == len(_REGISTRATIONS) and _finder in sys.meta_path:
        sys.meta_path.remove(_finder)


class _TrackingLoader(importlib.abc.Loader):
    """Wraps the loader of a transformers or hf_spatial module: counts nested executions and registers when the
    outermost one completes."""

    def __init__(self, loader: importlib.abc.Loader, module_name: str):
        self._loader = loader
        self._module_name = module_name

    def __getattr__(self, name: str):
        # get_code, get_source, is_package, get_resource_reader...: what runpy, inspect and pkgutil ask a loader
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module) -> None:
        global _depth
        _depth += 1
        try:
            self._loader.exec_module(module)
        finally:
            _depth -= 1
        if self._module_name in _REGISTRATIONS:
            _loaded_triggers.add(self._module_name)
        _run_pending()


class _TransformersImportFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        # Our own modules count too: registering while one of them is half-imported would re-import it.
        if not fullname.startswith(("transformers.", "hf_spatial.")) or len(_done) == len(_REGISTRATIONS):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader = _TrackingLoader(spec.loader, fullname)
        return spec


_finder = _TransformersImportFinder()


def install() -> None:
    """Register now with the already imported Auto modules; hook the rest (idempotent)."""
    # Hook first: registering imports our modules, which may import the remaining Auto modules.
    if len(_done) < len(_REGISTRATIONS) and _finder not in sys.meta_path:
        sys.meta_path.insert(0, _finder)
    _loaded_triggers.update(name for name in _REGISTRATIONS if name in sys.modules)
    _run_pending()


def register_all() -> None:
    """Import the transformers Auto modules now, registering SpatialQwenAudio with all of them."""
    install()
    for module_name in _REGISTRATIONS:
        importlib.import_module(module_name)
    _loaded_triggers.update(_REGISTRATIONS)
    _run_pending()
