#include "util/torch_pch.h"
