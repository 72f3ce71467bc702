// Precompiled header for translation units that use LibTorch. Only .cpp files and module-private headers
// see torch; public headers of config/, util/ and data/ stay torch-free so they compile fast.
#pragma once
#include <torch/torch.h>
