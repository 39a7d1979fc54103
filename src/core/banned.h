/* Functions whose unbounded writes or hidden state have caused real bugs elsewhere.
 * Including this header (every .c file does, through common.h) turns a use into a
 * compile error that names the safer call. */
#ifndef PX_BANNED_H
#define PX_BANNED_H

#define PX_BANNED(func) sorry_##func##_is_banned_use_the_bounded_alternative

#undef strcpy
#define strcpy(x, y) PX_BANNED(strcpy)
#undef strcat
#define strcat(x, y) PX_BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) PX_BANNED(strncpy)
#undef sprintf
#define sprintf(...) PX_BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) PX_BANNED(vsprintf)
#undef gets
#define gets(x) PX_BANNED(gets)
#undef strtok
#define strtok(x, y) PX_BANNED(strtok)
#undef system
#define system(x) PX_BANNED(system)

#endif
