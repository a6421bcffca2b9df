"""Stand-ins for modules that espnet2 imports at start-up but ParaAlign never uses.

``espnet2.text.phoneme_tokenizer`` imports g2p_en at module level: g2p_en imports nltk and inflect and calls
``nltk.download`` whenever its data is missing, in every process (offline it fails after an error message;
behind a firewall that drops packets it waits for the connection to time out). ``espnet2.text.cleaner``
imports tacotron_cleaner, which builds an inflect engine. Together that is 5-8 s of each ``python -m espnet_ext.bin.*`` start on 2 cores.
ParaAlign's text goes through the LLM's tokenizer, so neither is needed; code that does use them still gets
them: the stand-in imports the real module the first time one of its names is read.
"""
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types

DEFERRED = ("g2p_en", "tacotron_cleaner.cleaners")


class DeferredModule(types.ModuleType):
    """In sys.modules in place of a module not yet imported; reading a public name imports the real one."""

    def __init__(self, spec: importlib.machinery.ModuleSpec):
        super().__init__(spec.name)
        self.__spec__ = spec  # importlib.util.find_spec() (transformers' availability checks) returns it
        self.__file__ = spec.origin  # inspect.getmodule() reads __file__ of every module in sys.modules
        if spec.submodule_search_locations is not None:
            self.__path__ = list(spec.submodule_search_locations)

    def __getattr__(self, attr):
        if attr.startswith("__"):  # probes such as __wrapped__ or __version__ must not import it
            raise AttributeError(attr)
        return getattr(self.real_module(), attr)

    def real_module(self) -> types.ModuleType:
        root = self.__name__.split(".")[0]
        for name in [n for n, m in sys.modules.items() if isinstance(m, DeferredModule)
                     and (n == root or n.startswith(root + "."))]:
            del sys.modules[name]
        return importlib.import_module(self.__name__)


def defer(name: str) -> bool:
    """Put a stand-in for ``name`` (a top-level module, or ``package.module``) and its package in sys.modules,
    unless one of them is imported already or it is not installed (then the import fails where espnet2 expects
    it). True when deferred."""
    top, _, leaf = name.partition(".")
    if top in sys.modules or name in sys.modules:
        return False
    spec = importlib.util.find_spec(top)  # the top module's spec: found without running it
    if spec is None or spec.origin is None:
        return False
    modules = [DeferredModule(spec)]
    if leaf:
        origin = next((os.path.join(d, leaf + ".py") for d in spec.submodule_search_locations or []
                       if os.path.isfile(os.path.join(d, leaf + ".py"))), None)
        if origin is None:
            return False
        modules.append(DeferredModule(importlib.util.spec_from_file_location(name, origin)))
        setattr(modules[0], leaf, modules[1])  # `import package.module` then reads it as an attribute
    for module in modules:
        sys.modules[module.__name__] = module
    return True


def defer_unused() -> None:
    for name in DEFERRED:
        defer(name)
