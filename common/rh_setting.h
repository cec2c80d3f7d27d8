/*
 * The "key = value" lines of the client's and the daemon's setting files,
 * cut the one way both read them.
 */
#ifndef RH_SETTING_H
#define RH_SETTING_H

/* Splits line in place: 0 for a blank or comment (#) line, 1 with *key
 * and *value trimmed of white space, -1 when there is no '=' (*key is then
 * the trimmed line, for the message). */
int rh_setting_split(char *line, char **key, char **value);

#endif
