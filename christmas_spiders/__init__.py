"""project_christmas: the Scrapy project and the storage and config code every process shares."""
