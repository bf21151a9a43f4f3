/* A plugin built on libportreg.a, for unit.dlclose_exit_static: it uses the
 * functions dlclose_exit looks up, so that the linker keeps them, and they
 * stay global in the plugin. */
#include "portreg.h"

void *const dlclose_plugin_uses[] = {(void *)portreg_create, (void *)portreg_destroy,
                                     (void *)portreg_thread_attach};
