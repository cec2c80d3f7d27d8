#include "rh_setting.h"

#include <ctype.h>
#include <string.h>

static char *trim(char *s)
{
	while (isspace((unsigned char)*s))
		s++;
	char *end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

int rh_setting_split(char *line, char **key, char **value)
{
	char *s = trim(line);
	*key = s;
	*value = NULL;
	if (*s == '\0' || *s == '#')
		return 0;
	char *eq = strchr(s, '=');
	if (!eq)
		return -1;
	*eq = '\0';
	*key = trim(s);
	*value = trim(eq + 1);
	return 1;
}
