/* placeholder: not written yet */
#include "config.h"
