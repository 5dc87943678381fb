/*
 * recfresh - lookups over the topic table generated from topics/ (see
 * include/recfresh/topics.h for how it is generated).
 */
#include <string.h>

#include "recfresh/topics.h"

int rf_topic_by_name(const char *name)
{
        for (int t = 0; t < RF_TOPIC__CNT; t++)
                if (!strcmp(rf_topic_defs[t].name, name))
                        return t;
        return -1;
}
